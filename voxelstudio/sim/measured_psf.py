"""Simulate a (raw, target) pair with a measured PSF stack instead of the Gibson-Lanni model.

The same steps and random draws as :func:`voxelstudio.sim.pair.simulate_pair` (beads, beads outside the stack,
background, blur, haze, camera), so a pair made with ``make_psf``'s own PSF and ``out_of_stack=0`` matches it; only
the blur kernel differs. Beads outside the stack fill the same layer as there, cut to the measured stack's half
length: a bead further out sends no light through a kernel that ends there.
"""

from __future__ import annotations

import numpy as np
from scipy import fft
from scipy.signal import fftconvolve

from voxelstudio.sim.ambient import haze_transfer
from voxelstudio.sim.beads import bead_points, blob_kernel, clip_overlaps, unit_blobs
from voxelstudio.sim.camera import camera_counts
from voxelstudio.sim.pair import out_of_stack_planes, params_background, with_outside_beads
from voxelstudio.sim.params import SimParams, validate_shape

MIN_PSF_LIGHT = 0.9
"""Share of a measured PSF's light the kernel centred on its brightest point must keep."""


def prepare_psf(psf: np.ndarray) -> np.ndarray:
    """A measured PSF as a non-negative float32 kernel summing to 1 with its brightest voxel at the centre (cropped
    symmetrically around it); ValueError for anything that is not a 3-D stack with some light."""
    data = np.asarray(psf, dtype=np.float64)
    if data.ndim != 3:
        raise ValueError(f"a PSF must be a 3-D stack (H, W, Z), got shape {data.shape}")
    data = np.clip(np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    if not data.sum() > 0:
        raise ValueError("the PSF holds no light (all values zero or negative)")
    peak = np.unravel_index(int(np.argmax(data)), data.shape)
    half = [min(p, n - 1 - p) for p, n in zip(peak, data.shape, strict=True)]
    box = tuple(slice(p - h, p + h + 1) for p, h in zip(peak, half, strict=True))
    kernel = data[box]
    kept = float(kernel.sum() / data.sum())
    if min(half) < 2 or kept < MIN_PSF_LIGHT:
        raise ValueError(
            f"the PSF's brightest point {tuple(int(p) for p in peak)} is too near the stack's edge: a kernel centred "
            f"on it is {'x'.join(str(2 * h + 1) for h in half)} voxels and keeps {kept:.0%} of the light; "
            "record the stack with the bead in its middle (or remove a hot pixel there)"
        )
    return (kernel / kernel.sum()).astype(np.float32)


def simulate_pair_with_psf(
    shape: tuple[int, int, int], params: SimParams, psf: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Like ``simulate_pair(shape, params, seed)`` but blurring with ``psf`` (sampled on ``params.optics``' voxel
    grid; see :func:`prepare_psf`); an isolated bead of brightness 1 still peaks at 1 before the camera."""
    shape = validate_shape(shape)
    kernel = prepare_psf(psf)
    rng = np.random.default_rng(seed)
    optics = params.optics
    points = bead_points(shape, params.bead_density, params.brightness_spread, rng)
    layer = min(out_of_stack_planes(params, shape[2])[0], kernel.shape[2] // 2)
    if layer:  # as in simulate_pair: overlapping beads' light adds up in the raw; the target is clipped to 1
        target_extended = unit_blobs(with_outside_beads(points, params, layer, layer, seed), params.bead_sigma_vox)
        target = clip_overlaps(np.array(target_extended[:, :, layer : layer + shape[2]]))
    else:
        target_extended = unit_blobs(points, params.bead_sigma_vox)
        target = clip_overlaps(target_extended.copy())
    expected = params_background(shape, params, rng)
    mean_target = float(target.mean())
    if target_extended.any():
        unit = float(fftconvolve(blob_kernel(params.bead_sigma_vox), kernel).max())
        blurred = fftconvolve(target_extended, kernel, mode="same")[:, :, layer : layer + shape[2]]
        expected += (blurred / unit).astype(np.float32)
    if mean_target > 0 and params.haze > 0:  # the haze of the beads inside, as in simulate_pair
        transfer = haze_transfer(shape, optics.voxel_size_um, params.haze_sigma_um)
        transfer *= np.float32(params.haze / mean_target)
        expected += fft.irfftn(fft.rfftn(target) * transfer, shape).astype(np.float32)
    expected = np.maximum(expected, 0.0) * np.float32(params.photons)
    raw = camera_counts(expected, read_noise=params.read_noise, offset=params.offset, rng=rng)
    return raw, target
