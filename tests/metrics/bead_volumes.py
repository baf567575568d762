"""Hand-built bead volumes with known positions and widths (shared by the metrics tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BeadField = Callable[..., np.ndarray]


def gaussian_beads(
    shape: Sequence[int], centres: Sequence[Sequence[float]], sigma: Sequence[float], amplitude: float = 1.0
) -> np.ndarray:
    """Sum of 3-D Gaussians with peak ``amplitude`` at ``centres`` (float64)."""
    grid = np.indices(tuple(shape), dtype=np.float64)
    volume = np.zeros(tuple(shape))
    for centre in centres:
        r2 = sum((grid[i] - centre[i]) ** 2 / (2 * sigma[i] ** 2) for i in range(3))
        volume += amplitude * np.exp(-r2)
    return volume


def spread_positions(shape: Sequence[int], count: int, margin: int, spacing: int, seed: int) -> np.ndarray:
    """``count`` integer positions at least ``margin`` from the border and ``spacing`` apart (Chebyshev)."""
    rng = np.random.default_rng(seed)
    positions: list[np.ndarray] = []
    while len(positions) < count:
        candidate = np.array([rng.integers(margin, n - margin) for n in shape])
        if all(np.abs(candidate - p).max() >= spacing for p in positions):
            positions.append(candidate)
    return np.array(positions)
