"""Camera noise from the background: gain, offset and read noise of a Poisson-Gaussian camera (Foi et al. 2008).

A camera count is ``g·N + offset + read`` with ``N`` Poisson photo-electrons and Gaussian read noise of ``r``
counts rms. In blocks of background (no bead light) the local mean ``m``, variance ``v`` and third cumulant ``k3``
then follow

    v = g·(m − offset) + r²,        k3 = g²·(m − offset)

(the read noise is symmetric, so only the shot noise is skewed). The variance line gives the gain; the skew says
where the shot noise vanishes, i.e. the offset, which the variance alone cannot separate from the read noise. Each
block is detrended by a least-squares plane first, so smooth background ramps do not count as noise. The three
parameters are fitted jointly by weighted least squares (``scipy.optimize.least_squares``) and their standard errors
come from the Jacobian.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation, binary_opening
from scipy.optimize import least_squares

from voxelstudio.metrics.beads import smoothed_and_background

DEFAULT_BLOCK = (8, 8, 4)
MIN_BLOCKS = 8
"""Fewer background blocks than this cannot support a fit."""
CLIP_SD = 3.0
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class CameraEstimate:
    """Gain (counts per photo-electron), offset and read noise (counts) with their standard errors."""

    gain: float
    offset: float
    read_noise: float
    gain_sd: float
    offset_sd: float
    read_noise_sd: float
    n_blocks: int


def bead_mask(volume: np.ndarray, *, threshold_sd: float = 3.0, grow: Sequence[int] = (3, 3, 4)) -> np.ndarray:
    """Voxels lit by beads: the smoothed volume above its smooth background by ``threshold_sd`` robust noise
    deviations, opened by a 3x3x3 cube (noise speckles are smaller than beads), then dilated by ``grow`` voxels
    (y, x, z) to take in the dimmer rim and the axial tails."""
    smoothed, background = smoothed_and_background(volume)
    signal = smoothed - background
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(signal - np.median(signal))))
    mask = signal > float(np.median(signal)) + threshold_sd * max(spread, 1e-12)
    mask = binary_opening(mask, structure=np.ones((3, 3, 3), dtype=bool))
    structure = np.ones([2 * int(g) + 1 for g in grow], dtype=bool)
    return np.asarray(binary_dilation(mask, structure=structure))


def block_moments(
    volume: np.ndarray, exclude: np.ndarray | None = None, block: Sequence[int] = DEFAULT_BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(mean, variance, third cumulant, voxels per block) of every block free of ``exclude``, each block detrended
    by a least-squares plane (unbiased estimates for the residual's reduced degrees of freedom)."""
    data = np.asarray(volume, dtype=np.float64)
    counts = [n // b for n, b in zip(data.shape, block, strict=True)]
    if min(counts) < 1:
        raise ValueError(f"volume {data.shape} is smaller than one noise block {tuple(block)}")
    by, bx, bz = block
    cropped = tuple(slice(0, c * b) for c, b in zip(counts, block, strict=True))

    def blocks_of(array: np.ndarray) -> np.ndarray:
        shaped = array[cropped].reshape(counts[0], by, counts[1], bx, counts[2], bz)
        return shaped.transpose(0, 2, 4, 1, 3, 5).reshape(-1, by * bx * bz)

    values = blocks_of(data)
    if exclude is not None:
        values = values[~blocks_of(np.asarray(exclude, dtype=bool)).any(axis=1)]
    grid = np.stack(np.meshgrid(*(np.arange(b) - (b - 1) / 2 for b in block), indexing="ij"), -1).reshape(-1, 3)
    design = np.column_stack([np.ones(len(grid)), grid])
    residual_maker = np.eye(len(grid)) - design @ np.linalg.pinv(design)
    residuals = values @ residual_maker.T
    variance = (residuals**2).sum(axis=1) / np.trace(residual_maker)
    third = (residuals**3).sum(axis=1) / float((residual_maker**3).sum())
    return values.mean(axis=1), variance, third, len(grid)


@dataclass(frozen=True)
class DarkCamera:
    """Offset and read noise (counts) measured on a dark stack, with their standard errors."""

    offset: float
    read_noise: float
    offset_sd: float
    read_noise_sd: float


def dark_camera(dark: np.ndarray) -> DarkCamera:
    """The camera's offset and read noise from a stack recorded without light (same camera settings): the median
    over blocks of their mean and detrended variance (:func:`block_moments`; the median ignores hot pixels).
    ValueError for a stack smaller than one block."""
    dark = np.asarray(dark, dtype=np.float64)
    if dark.ndim == 2:
        dark = dark[..., None]
    if dark.ndim != 3:
        raise ValueError(f"a dark stack must be a 2-D image or a 3-D stack, got shape {dark.shape}")
    block = (DEFAULT_BLOCK[0], DEFAULT_BLOCK[1], min(DEFAULT_BLOCK[2], dark.shape[2]))
    if dark.shape[0] < block[0] or dark.shape[1] < block[1]:
        raise ValueError(f"a dark stack needs at least {block[0]}x{block[1]} pixels, got {dark.shape[:2]}")
    means, variances, _, voxels = block_moments(dark, None, block)
    if not np.isfinite(means).all():
        raise ValueError("the dark stack holds NaN or infinite values")
    read_var = float(np.median(variances))
    n = len(means)
    read = math.sqrt(max(read_var, 0.0))
    read_var_sd = read_var * math.sqrt(2.0 / max(voxels - 1, 1) / n) * 1.2533  # the median's SE: sqrt(pi/2) x mean's
    offset_sd = math.sqrt(max(read_var, 0.0) / (n * voxels))
    return DarkCamera(float(np.median(means)), read, offset_sd, math.sqrt(read_var + read_var_sd) - read)


def fit_camera(
    means: np.ndarray,
    variances: np.ndarray,
    thirds: np.ndarray,
    block_voxels: int,
    *,
    known: DarkCamera | None = None,
) -> CameraEstimate:
    """Joint weighted least-squares fit of the variance and skew lines (module docstring) to block moments; with
    ``known`` (a dark stack's offset and read noise) only the gain is fitted.

    Blocks whose variance lies more than ``CLIP_SD`` standard errors above or below the robust variance line (light
    that is not noise: bead rims, defocused beads outside the stack) are left out first, twice."""
    if len(variances) and not np.any(np.asarray(variances) > 0):  # the fit would fail inside LAPACK, noisily
        raise ValueError(
            "the background holds no noise at all (a target or a denoised volume?): calibration needs raw camera scans"
        )
    for _ in range(2):
        if len(means) < MIN_BLOCKS:
            break
        slope, intercept = np.polyfit(means, variances, 1)
        expected = np.maximum(slope * means + intercept, 1e-6)
        deviation = (variances - expected) / (np.sqrt(2.0 / (block_voxels - 1)) * expected)
        keep = np.abs(deviation - np.median(deviation)) < CLIP_SD
        means, variances, thirds = means[keep], variances[keep], thirds[keep]
    if len(means) < MIN_BLOCKS:
        raise ValueError(f"only {len(means)} background blocks free of beads; the camera noise needs {MIN_BLOCKS}")
    slope, intercept = np.polyfit(means, variances, 1)
    smooth_var = np.maximum(slope * means + intercept, 1e-6)
    sd_var = np.sqrt(2.0 / (block_voxels - 1)) * smooth_var
    sd_third = np.sqrt(6.0 / block_voxels) * smooth_var**1.5

    def residuals(theta: np.ndarray) -> np.ndarray:  # the read-noise variance, not its SD: linear, finite slope at 0
        gain, offset, read_var = theta
        electrons = means - offset
        return np.concatenate(
            [(gain * electrons + read_var - variances) / sd_var, (gain**2 * electrons - thirds) / sd_third]
        )

    gain0 = max(float(slope), 1e-3)
    if known is not None:
        return _fit_gain(residuals, gain0, known, len(means))
    offset0 = float(np.median(means - thirds / gain0**2))
    start = np.array([gain0, offset0, max(float(np.min(smooth_var)) * 0.5, 1e-6)])
    fit = least_squares(residuals, start, bounds=([1e-6, -np.inf, 0.0], [np.inf, np.inf, np.inf]), x_scale="jac")
    dof = max(2 * len(means) - 3, 1)
    scale = float(fit.fun @ fit.fun) / dof
    try:
        covariance = np.linalg.inv(fit.jac.T @ fit.jac) * max(scale, 1.0)
        errors = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    except np.linalg.LinAlgError:
        errors = np.full(3, np.inf)
    gain, offset, read_var = (float(v) for v in fit.x)
    read = math.sqrt(read_var)
    read_sd = math.sqrt(read_var + float(errors[2])) - read  # one SD up; the delta method's sd/(2 read) away from 0
    return CameraEstimate(gain, offset, read, float(errors[0]), float(errors[1]), read_sd, n_blocks=len(means))


def _fit_gain(
    residuals: Callable[[np.ndarray], np.ndarray], gain0: float, known: DarkCamera, n_blocks: int
) -> CameraEstimate:
    """The gain alone, with the offset and read noise of a dark stack held."""
    fixed = (known.offset, known.read_noise**2)
    fit = least_squares(lambda g: residuals(np.array([g[0], *fixed])), [gain0], bounds=([1e-6], [np.inf]))
    dof = max(2 * n_blocks - 1, 1)
    scale = float(fit.fun @ fit.fun) / dof
    try:
        gain_sd = float(np.sqrt(np.linalg.inv(fit.jac.T @ fit.jac)[0, 0] * max(scale, 1.0)))
    except np.linalg.LinAlgError:
        gain_sd = math.inf
    return CameraEstimate(
        float(fit.x[0]), known.offset, known.read_noise, gain_sd, known.offset_sd, known.read_noise_sd, n_blocks
    )


def estimate_camera(
    volume: np.ndarray, exclude: np.ndarray | None = None, block: Sequence[int] = DEFAULT_BLOCK
) -> CameraEstimate:
    """Camera gain, offset and read noise from the background of ``volume`` (beads masked by :func:`bead_mask`
    unless ``exclude`` is given; pass an all-False mask for a bead-free volume)."""
    exclude = bead_mask(volume) if exclude is None else exclude
    return fit_camera(*block_moments(volume, exclude, block))
