"""Simulate one (raw, target) pair: blobs → PSF blur + haze → ambient background → camera noise."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import fft

from voxelstudio.sim.ambient import haze_transfer, smooth_background
from voxelstudio.sim.beads import bead_points, blob_kernel, clip_overlaps, unit_blobs
from voxelstudio.sim.camera import camera_counts
from voxelstudio.sim.params import OpticsParams, SimParams, validate_shape
from voxelstudio.sim.psf import axial_fwhm_um, make_psf
from voxelstudio.sim.psf_cache import PsfCache

PSF_LATERAL_HALF_WIDTH = 32
"""Lateral PSF support is ±this many voxels (enough for the in-focus core and the nearer defocus rings); light
further out is part of the haze term."""

OUT_OF_STACK_MAX_DEPTHS = 1.0
"""The bead layers outside the stack are at most this many stack depths thick (each side)."""
OUT_OF_STACK_STREAM = 0x0B5
"""Second element of the ``[seed, stream]`` random stream that places the beads outside the stack."""

Shape = tuple[int, int, int]

fft_workers = -1
"""Threads per FFT (-1: all cores). A generator worker process sets 1: its siblings use the other cores."""


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
    return _spectrum_of(make_psf(optics, psf_shape_for(shape)), shape)


def _spectrum_of(psf: np.ndarray, shape: Shape, *, middle_planes_only: bool = False) -> tuple[np.ndarray, Shape]:
    """The padding makes the convolution linear ('same'). ``middle_planes_only``: only the middle planes of
    ``shape`` are kept (a stack between reserves as deep as the PSF's axial half minus the stack), so along z a
    circular convolution as long as the PSF is exact there: every offset between a kept plane and any plane of
    ``shape`` is within the PSF's reach and maps to its own PSF plane (a 32-plane stack with full reserves: 128 FFT
    planes instead of 160)."""
    halves = [n // 2 for n in psf.shape]
    sizes = [n + h for n, h in zip(shape, halves, strict=True)]
    if middle_planes_only:
        sizes[2] = max(shape[2], psf.shape[2])
    padded = tuple(fft.next_fast_len(n, real=True) for n in sizes)
    kernel = np.zeros(padded, dtype=np.float32)
    kernel[: psf.shape[0], : psf.shape[1], : psf.shape[2]] = psf
    kernel = np.roll(kernel, [-h for h in halves], axis=(0, 1, 2))
    spectrum = fft.rfftn(kernel, workers=fft_workers)
    spectrum.flags.writeable = False
    return spectrum, padded  # type: ignore[return-value]


@lru_cache(maxsize=16)
def isolated_bead_peak(optics: OpticsParams, shape: Shape, sigma_vox: float) -> float:
    """Peak of one brightness-1 blob blurred by the PSF used for ``shape``: the raw intensity unit."""
    return _bead_peak_of(make_psf(optics, psf_shape_for(shape)), sigma_vox)


def _bead_peak_of(psf: np.ndarray, sigma_vox: float) -> float:
    blob = blob_kernel(sigma_vox)
    reach = blob.shape[0] // 2 + 2
    cy, cx = psf.shape[0] // 2, psf.shape[1] // 2
    core = psf[max(cy - reach, 0) : cy + reach + 1, max(cx - reach, 0) : cx + reach + 1, :]
    full = [a + b - 1 for a, b in zip(core.shape, blob.shape, strict=True)]
    blurred = fft.irfftn(fft.rfftn(core, full) * fft.rfftn(blob, full), full)
    return float(blurred.max())


def out_of_stack_planes(params: SimParams, depth: int) -> tuple[int, int]:
    """(planes of beads simulated on each side of a ``depth``-plane stack, planes the grid reserves on each side).

    The layer is ``params.out_of_stack`` axial PSF FWHMs thick; the reserve is the layer at the parameter's maximum,
    so the PSF's support (and a cached PSF) depends on the optics and the stack only. Both are capped at
    ``OUT_OF_STACK_MAX_DEPTHS`` stack depths: beads further out spread their light beyond the PSF's lateral
    window, where the haze term stands for it.
    """
    if params.out_of_stack <= 0 or params.bead_density <= 0:
        return 0, 0
    fwhm_planes = axial_fwhm_um(params.optics) / params.optics.z_step_um
    cap = int(OUT_OF_STACK_MAX_DEPTHS * depth)
    largest = SimParams.ranges()["out_of_stack"][1]
    reserve = min(math.ceil(largest * fwhm_planes), cap)
    return min(math.ceil(params.out_of_stack * fwhm_planes), reserve), reserve


def params_background(shape: tuple[int, int, int], params: SimParams, rng: np.random.Generator) -> np.ndarray:
    """The smooth ambient background of ``params`` (level, variation, length scale) on ``shape``'s voxel grid."""
    return smooth_background(
        shape,
        params.optics.voxel_size_um,
        level=params.background,
        variation=params.background_variation,
        scale_um=params.background_scale_um,
        rng=rng,
    )


def simulate_pair(
    shape: tuple[int, int, int] = (128, 128, 32),
    params: SimParams | None = None,
    seed: int = 0,
    *,
    psf_cache: PsfCache | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One simulated pair ``(raw, target)``, both float32 (H, W, Z); the same seed gives the same arrays.

    ``target`` holds the beads as isotropic blobs in [0, 1]. ``raw`` is that object blurred by the Gibson-Lanni PSF
    (axial elongation), plus out-of-focus haze and a smooth ambient background, in photo-electrons with Poisson
    shot noise, then camera read noise and offset: float camera counts. The z index follows the focal-scan
    coordinate of :mod:`voxelstudio.sim.psf`, so an index-mismatch PSF's longer tail points the same way in every
    volume.

    With ``params.out_of_stack`` > 0, beads of the same density also fill a layer above and below the stack (drawn
    from a separate random stream, so the beads inside the stack do not change): their defocused light (discs and
    rings with the PSF's aberrations) is in the raw only, and beads cut by the stack's top or bottom plane appear in
    the target as partial blobs. ``psf_cache`` (optional) supplies PSFs of rounded optics (see
    :mod:`voxelstudio.sim.psf_cache`); the pair then uses the rounded optics.
    """
    shape = validate_shape(shape)
    params = SimParams() if params is None else params
    if not isinstance(params, SimParams):
        raise ValueError(f"params must be SimParams, got {type(params).__name__}")
    if psf_cache is not None:
        params = params.replace(optics=psf_cache.rounded(params.optics))
    rng = np.random.default_rng(seed)

    points = bead_points(shape, params.bead_density, params.brightness_spread, rng)
    layer, reserve = out_of_stack_planes(params, shape[2])
    # every bead, inside and outside, emits light on the intensity scale of the stack's target; where beads overlap
    # their light adds up in the raw, and the target is clipped to 1
    if reserve:
        target_extended = unit_blobs(with_outside_beads(points, params, layer, reserve, seed), params.bead_sigma_vox)
        target = clip_overlaps(np.array(target_extended[:, :, reserve : reserve + shape[2]]))
    else:
        target_extended = unit_blobs(points, params.bead_sigma_vox)
        target = clip_overlaps(target_extended.copy())
    expected = params_background(shape, params, rng)
    mean_target = float(target.mean())
    if target_extended.any():
        signal = _blurred_signal(target_extended, params, shape, reserve, psf_cache)
        if mean_target > 0 and params.haze > 0:
            signal += _haze(target, params, mean_target)
        expected += signal
    expected *= np.float32(params.photons)
    raw = camera_counts(expected, read_noise=params.read_noise, offset=params.offset, rng=rng)
    return raw, target


def with_outside_beads(points: np.ndarray, params: SimParams, layer: int, reserve: int, seed: int) -> np.ndarray:
    """``points`` inside ``reserve`` empty planes on each side, the ``layer`` planes next to the stack filled with
    beads of the same density from the stream ``(seed, OUT_OF_STACK_STREAM)``."""
    height, width, depth = points.shape
    extended = np.zeros((height, width, depth + 2 * reserve), dtype=np.float32)
    extended[:, :, reserve : reserve + depth] = points
    if layer:
        rng = np.random.default_rng([seed, OUT_OF_STACK_STREAM])
        above = bead_points((height, width, layer), params.bead_density, params.brightness_spread, rng)
        below = bead_points((height, width, layer), params.bead_density, params.brightness_spread, rng)
        extended[:, :, reserve - layer : reserve] = above
        extended[:, :, reserve + depth : reserve + depth + layer] = below
    return extended


def _blurred_signal(
    target: np.ndarray, params: SimParams, shape: Shape, reserve: int, psf_cache: PsfCache | None
) -> np.ndarray:
    """The stack's planes of ``target`` (the stack plus ``reserve`` planes on each side) blurred by the PSF, scaled
    so an isolated bead peaks at its brightness.

    The PSF spans the stack plus one reserve (2(Z + reserve) − 1 planes): every offset between a stack plane and a
    bead plane, so no light wraps around into the stack's planes.
    """
    optics = params.optics
    psf_shape = (shape[0], shape[1], shape[2] + reserve)
    if psf_cache is None:
        spectrum, padded = _psf_spectrum_for(optics, target.shape, psf_shape)
        gain = np.float32(1.0 / isolated_bead_peak(optics, psf_shape, params.bead_sigma_vox))
    else:
        support = psf_shape_for(psf_shape)
        spectrum, padded = psf_cache.derived(
            "spectrum", optics, support, target.shape,
            lambda psf: _spectrum_of(psf, target.shape, middle_planes_only=reserve > 0),
        )  # fmt: skip
        gain = np.float32(1.0 / _bead_peak_of(psf_cache.psf(optics, support), params.bead_sigma_vox))
    blurred = fft.irfftn(fft.rfftn(target, padded, workers=fft_workers) * spectrum * gain, padded, workers=fft_workers)
    return blurred[: shape[0], : shape[1], reserve : reserve + shape[2]].astype(np.float32)


def _psf_spectrum_for(optics: OpticsParams, object_shape: Shape, psf_shape: Shape) -> tuple[np.ndarray, Shape]:
    if object_shape == psf_shape:
        return _psf_spectrum(optics, object_shape)
    return _extended_spectrum(optics, object_shape, psf_shape)


@lru_cache(maxsize=2)
def _extended_spectrum(optics: OpticsParams, object_shape: Shape, psf_shape: Shape) -> tuple[np.ndarray, Shape]:
    return _spectrum_of(make_psf(optics, psf_shape_for(psf_shape)), object_shape, middle_planes_only=True)


def _haze(target: np.ndarray, params: SimParams, mean_target: float) -> np.ndarray:
    """Haze averaging ``params.haze``: a periodic blur of the in-stack beads on the volume's own grid, which keeps
    all the light inside, so the haze mean is exactly ``haze``."""
    shape = target.shape
    transfer = haze_transfer(shape, params.optics.voxel_size_um, params.haze_sigma_um)
    transfer *= np.float32(params.haze / mean_target)
    return fft.irfftn(fft.rfftn(target, workers=fft_workers) * transfer, shape, workers=fft_workers).astype(np.float32)
