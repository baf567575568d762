"""Ambient background and haze of a bead scan, in the simulator's units (bead peak = 1).

The smooth background of each scan (block medians, :func:`voxelstudio.metrics.beads.smoothed_and_background`) is
explained by least squares as a linear ramp (the ambient background's trend) plus a haze map: the found beads as the
simulator's blobs, blurred by the simulator's haze kernel of lateral sigma ``s`` and scaled to mean 1, so its
coefficient is the mean haze. ``s`` is the candidate with the smallest residual. What the haze does not explain is the
ambient background: its mean is the level and its largest deviation from that mean, relative to it, the variation
(as the simulator defines it; a ramp's slopes missed most of its waves, reading 0.03-0.19 for 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import fft

from voxelstudio.metrics.beads import find_beads, smoothed_and_background
from voxelstudio.sim.ambient import haze_transfer
from voxelstudio.sim.beads import blob_field

HAZE_SIGMAS_UM = (0.5, 1.0, 1.5, 2.5, 4.0)


@dataclass(frozen=True)
class AmbientEstimate:
    """Mean ambient background, its relative variation, the mean haze and its lateral sigma (µm)."""

    background: float
    variation: float
    haze: float
    haze_sigma_um: float


def _design(shape: tuple[int, ...]) -> np.ndarray:
    axes = np.meshgrid(*(np.linspace(-1.0, 1.0, n) for n in shape), indexing="ij")
    return np.column_stack([np.ones(int(np.prod(shape)))] + [a.ravel() for a in axes])


def _bead_object(volume: np.ndarray, background: np.ndarray, photons: float, sigma_vox: float) -> np.ndarray:
    peaks = find_beads(volume)
    points = np.zeros(volume.shape, dtype=np.float32)
    if len(peaks):
        index = tuple(peaks.T)
        points[index] = np.clip((volume[index] - background[index]) / photons, 0.0, None)
    return blob_field(points, sigma_vox) if len(peaks) else points


def estimate_ambient(
    electrons: Sequence[np.ndarray],
    *,
    photons: float,
    sigma_vox: float,
    spacing: tuple[float, float, float],
) -> AmbientEstimate:
    """Background level and variation, haze and its sigma from scans in photo-electrons (module docstring)."""
    fits: dict[float, list[tuple[np.ndarray, float, int, float, float]]] = {s: [] for s in HAZE_SIGMAS_UM}
    for volume in electrons:
        _, smooth = smoothed_and_background(volume)
        target = _bead_object(volume, smooth, photons, sigma_vox)
        mean_target = float(target.mean())
        ramp = _design(volume.shape)
        spectrum = fft.rfftn(target) if mean_target > 0 else None
        for sigma in HAZE_SIGMAS_UM:
            if spectrum is None:
                columns = ramp
            else:
                haze_map = fft.irfftn(spectrum * haze_transfer(volume.shape, spacing, sigma), volume.shape)
                columns = np.column_stack([ramp, haze_map.ravel() / mean_target])
            coef, *_ = np.linalg.lstsq(columns, smooth.ravel().astype(np.float64), rcond=None)
            residual = float(np.sum((columns @ coef - smooth.ravel()) ** 2))
            ambient = smooth.ravel() - (columns[:, 4:] @ coef[4:] if len(coef) > 4 else 0.0)
            level = float(ambient.mean())
            fits[sigma].append((coef, residual, volume.size, level, float(np.abs(ambient - level).max())))
    sigma = min(HAZE_SIGMAS_UM, key=lambda s: sum(f[1] for f in fits[s]))
    weights = np.array([f[2] for f in fits[sigma]], dtype=np.float64)
    level = float(np.average([f[3] for f in fits[sigma]], weights=weights))
    deviation = float(np.average([f[4] for f in fits[sigma]], weights=weights))
    haze = float(np.average([f[0][4] if len(f[0]) > 4 else 0.0 for f in fits[sigma]], weights=weights))
    variation = deviation / level if level > 0 else 0.0
    return AmbientEstimate(max(level, 0.0) / photons, variation, max(haze, 0.0) / photons, sigma)
