"""Intensity along a line through a volume (the line profile of a slice view) and the width of its peak.

Distances are in micrometres (the volume's spacing); the line is sampled about once per voxel step with linear
interpolation, so a line along an axis reads exactly the voxels it passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import map_coordinates

from voxelstudio.metrics.fwhm import profile_fwhm


def line_samples(start: Sequence[float], end: Sequence[float]) -> np.ndarray:
    """(n, 3) voxel coordinates from ``start`` to ``end`` (y, x, z), one step per voxel along the longest axis."""
    start_a, end_a = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    count = int(np.ceil(np.abs(end_a - start_a).max())) + 1
    return np.linspace(start_a, end_a, count)


def line_profile(
    data: np.ndarray, start: Sequence[float], end: Sequence[float], spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Distances from ``start`` (µm) and the values of ``data`` along the line from ``start`` to ``end``."""
    points = line_samples(start, end)
    values = map_coordinates(np.asarray(data, dtype=np.float32), points.T, order=1, mode="nearest")
    steps = (points - points[0]) * np.asarray(spacing, dtype=np.float64)
    return np.linalg.norm(steps, axis=1), values


def peak_fwhm(distances: np.ndarray, values: np.ndarray) -> float | None:
    """FWHM (in the units of ``distances``) of the brightest peak above the profile's minimum; None when it does not
    fall to half height on both sides within the line."""
    if len(values) < 3:
        return None
    centre = int(np.argmax(values))
    width = profile_fwhm(np.asarray(values, dtype=np.float64) - float(np.min(values)), centre)
    if width is None:
        return None
    step = float(distances[-1]) / (len(distances) - 1)
    return width * step
