"""bead_shifts / median_offset: a prediction whose beads all sit 0.6 planes deep is measured as such."""

from __future__ import annotations

import numpy as np
import pytest
from bead_volumes import gaussian_beads, spread_positions

from voxelstudio.metrics.bead_offset import bead_shifts, median_offset

SHAPE = (64, 64, 32)
SIGMA = (1.0, 1.0, 1.2)


def _pair(offset: tuple[float, float, float], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = spread_positions(SHAPE, 30, margin=2, spacing=8, seed=seed) + rng.uniform(-0.5, 0.5, (30, 3))
    target = gaussian_beads(SHAPE, centres, SIGMA)
    pred = gaussian_beads(SHAPE, centres + np.asarray(offset), SIGMA)
    return pred, target, centres


@pytest.mark.parametrize("offset", [(0.0, 0.0, 0.6), (0.0, 0.0, -0.35), (0.25, -0.15, 0.0)])
def test_a_shifted_prediction_is_measured_by_its_shift(offset: tuple[float, float, float]) -> None:
    pred, target, _ = _pair(offset)
    shifts = bead_shifts(pred, target)
    assert shifts.shape[1] == 3
    assert median_offset(shifts) == pytest.approx(offset, abs=0.06)  # 1/20-voxel registration


def test_beads_whose_box_crosses_a_face_are_left_out() -> None:
    pred, target, centres = _pair((0.0, 0.0, 0.6))
    inside = np.all((np.round(centres) >= 4) & (np.round(centres) + 4 < SHAPE), axis=1)
    assert 0 < len(bead_shifts(pred, target)) <= inside.sum() < len(centres)


def test_no_beads_give_no_shifts_and_a_zero_median() -> None:
    empty = np.zeros(SHAPE)
    assert bead_shifts(empty, empty).shape == (0, 3)
    assert median_offset(np.empty((0, 3))) == pytest.approx((0.0, 0.0, 0.0))


def test_volumes_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="one shape"):
        bead_shifts(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)))
