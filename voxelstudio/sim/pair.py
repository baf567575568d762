"""Simulate one (raw, target) pair: blobs → PSF blur + haze → ambient background → camera noise."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft

from voxelstudio.sim.ambient import haze_transfer, smooth_background
from voxelstudio.sim.beads import bead_points, blob_field, blob_kernel
from voxelstudio.sim.camera import camera_counts
from voxelstudio.sim.params import OpticsParams, SimParams, validate_shape
from voxelstudio.sim.psf import make_psf

PSF_LATERAL_HALF_WIDTH = 32
"""Lateral PSF support is ±this many voxels (enough for the in-focus core and the nearer defocus rings); light
further out is part of the haze term."""

Shape = tuple[int, int, int]


def psf_shape_for(shape: Shape) -> Shape:
    """Odd PSF support used for a volume of ``shape``: the whole axial range (2Z − 1) and a lateral window."""
    height, width, depth = shape
    return (
        2 * min(height - 1, PSF_LATERAL_HALF_WIDTH) + 1,
        2 * min(width - 1, PSF_LATERAL_HALF_WIDTH) + 1,
        2 * depth - 1,
    )


@lru_cache(maxsize=2)
def _psf_spectrum(optics: OpticsParams, shape: Shape) -> tuple[np.ndarray, Shape]:
    """rfftn of the PSF, rolled so its centre sits at the origin of a padded grid big enough for a linear
    (non-wrapping) 'same' convolution with a volume of ``shape``; returns (spectrum, padded shape)."""
    psf = make_psf(optics, psf_shape_for(shape))
    halves = [n // 2 for n in psf.shape]
    padded = tuple(fft.next_fast_len(n + h, real=True) for n, h in zip(shape, halves, strict=True))
    kernel = np.zeros(padded, dtype=np.float32)
    kernel[: psf.shape[0], : psf.shape[1], : psf.shape[2]] = psf
    kernel = np.roll(kernel, [-h for h in halves], axis=(0, 1, 2))
    spectrum = fft.rfftn(kernel, workers=-1)
    spectrum.flags.writeable = False
    return spectrum, padded  # type: ignore[return-value]


@lru_cache(maxsize=16)
def isolated_bead_peak(optics: OpticsParams, shape: Shape, sigma_vox: float) -> float:
    """Peak of one brightness-1 blob blurred by the PSF used for ``shape``: the raw intensity unit."""
    psf = make_psf(optics, psf_shape_for(shape))
    blob = blob_kernel(sigma_vox)
    reach = blob.shape[0] // 2 + 2
    cy, cx = psf.shape[0] // 2, psf.shape[1] // 2
    core = psf[max(cy - reach, 0) : cy + reach + 1, max(cx - reach, 0) : cx + reach + 1, :]
    full = [a + b - 1 for a, b in zip(core.shape, blob.shape, strict=True)]
    blurred = fft.irfftn(fft.rfftn(core, full) * fft.rfftn(blob, full), full)
    return float(blurred.max())


def simulate_pair(
    shape: tuple[int, int, int] = (128, 128, 32), params: SimParams | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """One simulated pair ``(raw, target)``, both float32 (H, W, Z); the same seed gives the same arrays.

    ``target`` holds the beads as isotropic blobs in [0, 1]. ``raw`` is that object blurred by the Gibson-Lanni PSF
    (axial elongation), plus out-of-focus haze and a smooth ambient background, in photo-electrons with Poisson
    shot noise, then camera read noise and offset: float camera counts. The z index follows the focal-scan
    coordinate of :mod:`voxelstudio.sim.psf`, so an index-mismatch PSF's longer tail points the same way in every
    volume.
    """
    shape = validate_shape(shape)
    params = SimParams() if params is None else params
    if not isinstance(params, SimParams):
        raise ValueError(f"params must be SimParams, got {type(params).__name__}")
    optics = params.optics
    rng = np.random.default_rng(seed)

    points = bead_points(shape, params.bead_density, params.brightness_spread, rng)
    target = blob_field(points, params.bead_sigma_vox)
    expected = smooth_background(
        shape,
        optics.voxel_size_um,
        level=params.background,
        variation=params.background_variation,
        scale_um=params.background_scale_um,
        rng=rng,
    )
    mean_target = float(target.mean())
    if mean_target > 0:
        expected += _blurred_signal(target, params, mean_target)
    expected *= np.float32(params.photons)
    raw = camera_counts(expected, read_noise=params.read_noise, offset=params.offset, rng=rng)
    return raw, target


def _blurred_signal(target: np.ndarray, params: SimParams, mean_target: float) -> np.ndarray:
    """PSF blur scaled so an isolated bead peaks at its brightness, plus haze averaging ``params.haze``."""
    optics, shape = params.optics, target.shape
    spectrum, padded = _psf_spectrum(optics, shape)
    gain = np.float32(1.0 / isolated_bead_peak(optics, shape, params.bead_sigma_vox))
    blurred = fft.irfftn(fft.rfftn(target, padded, workers=-1) * spectrum * gain, padded, workers=-1)
    signal = blurred[: shape[0], : shape[1], : shape[2]].astype(np.float32)
    if params.haze > 0:
        # Periodic blur on the volume's own grid keeps all the light inside, so the haze mean is exactly ``haze``.
        transfer = haze_transfer(shape, optics.voxel_size_um, params.haze_sigma_um)
        transfer *= np.float32(params.haze / mean_target)
        signal += fft.irfftn(fft.rfftn(target, workers=-1) * transfer, shape, workers=-1).astype(np.float32)
    return signal
