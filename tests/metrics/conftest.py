"""Fixtures: bead positions and a bead-field factory."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from bead_volumes import BeadField, gaussian_beads, spread_positions


@pytest.fixture
def bead_positions() -> np.ndarray:
    """Twelve well-separated bead positions in a (48, 48, 24) volume."""
    return spread_positions((48, 48, 24), 12, margin=4, spacing=8, seed=3)


@pytest.fixture
def bead_field() -> BeadField:
    """``bead_field(positions, sigma=(1, 1, 1), shape=(48, 48, 24))``: a clean target-like volume."""

    def make(positions: np.ndarray, sigma: Sequence[float] = (1.0, 1.0, 1.0), shape=(48, 48, 24)) -> np.ndarray:
        return gaussian_beads(shape, positions, sigma)

    return make
