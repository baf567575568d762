"""Camera model: Poisson shot noise, Gaussian read noise and an offset (gain of one count per photo-electron)."""

from __future__ import annotations

import numpy as np


def camera_counts(
    expected_electrons: np.ndarray, *, read_noise: float, offset: float, rng: np.random.Generator
) -> np.ndarray:
    """Noisy camera counts (float32) for an array of expected photo-electrons per voxel."""
    electrons = rng.poisson(np.maximum(expected_electrons, 0.0)).astype(np.float32)
    read = rng.standard_normal(electrons.shape, dtype=np.float32)
    read *= np.float32(read_noise)
    electrons += read
    electrons += np.float32(offset)
    return electrons
