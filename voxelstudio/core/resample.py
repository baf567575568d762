"""Separable linear resampling of 3-D arrays at arbitrary per-axis coordinates (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def resample_axes(array: np.ndarray, coordinates: Sequence[np.ndarray]) -> np.ndarray:
    """Linear interpolation of a 3-D ``array`` at ``coordinates[a]`` (fractional indices, clamped to the edges)
    along each axis ``a``, one axis at a time (no coordinate grids are built)."""
    out = np.asarray(array, dtype=np.float32)
    for axis, coords in enumerate(coordinates):
        n = out.shape[axis]
        coords = np.clip(np.asarray(coords, dtype=np.float64), 0, n - 1)
        low = np.floor(coords).astype(np.intp)
        high = np.minimum(low + 1, n - 1)
        shape = [1, 1, 1]
        shape[axis] = len(coords)
        weight = (coords - low).astype(np.float32).reshape(shape)
        out = np.take(out, low, axis=axis) * (1 - weight) + np.take(out, high, axis=axis) * weight
    return out
