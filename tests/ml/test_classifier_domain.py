"""The classifier's domain check: the Euler characteristic of occupancy grids, calibration and the fallback."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.ml.classifier_domain import (
    FALLBACK_MIN_EULER,
    Domain,
    calibrate_domain,
    count_objects,
    euler_characteristic,
    fallback_domain,
)


def _ball(size: int = 20, radius: float = 7.0, hollow: float = 0.0) -> np.ndarray:
    r = np.linalg.norm(np.indices((size,) * 3) - (size - 1) / 2, axis=0)
    return ((r <= radius) & (r >= hollow)).astype(np.uint8)


def _torus(size: int = 24) -> np.ndarray:
    x, y, z = np.indices((size,) * 3) - (size - 1) / 2
    return ((np.hypot(x, y) - 7.0) ** 2 + z**2 <= 2.5**2).astype(np.uint8)


def test_euler_characteristic_counts_components_tunnels_and_cavities() -> None:
    assert euler_characteristic(_ball()) == 1
    assert euler_characteristic(_ball(hollow=4.0)) == 2  # one cavity
    assert euler_characteristic(_torus()) == 0  # one tunnel
    two = np.concatenate([_ball(), _ball()], axis=0)
    assert euler_characteristic(two) == 2 and euler_characteristic(np.zeros((4, 4, 4))) == 0
    noise = np.random.default_rng(0).random((32,) * 3) >= 0.5
    assert euler_characteristic(noise) < -500  # thresholded noise: a sponge of tunnels


def test_calibrated_domain_flags_noise_and_low_confidence() -> None:
    grids = np.stack([_ball(), _ball(hollow=4.0), _ball(radius=5.0)])
    confident = np.array([[0.9, 0.1], [0.8, 0.2], [0.95, 0.05]])
    domain = calibrate_domain(confident, grids)
    assert domain.euler_range == (-5.0, 8.0)  # [1, 2] widened by a quarter of the range + 5
    assert domain.max_probability == 0.6  # 2.5th percentile ~0.8, capped: a sound volume at 70 % stays in
    assert calibrate_domain(confident * 0.5, grids).max_probability == pytest.approx(np.quantile([0.45, 0.4, 0.475],
                                                                                                0.025))  # fmt: skip
    assert domain.check(np.array([0.7, 0.3]), _ball()) is None
    assert "below 0.60" in domain.check(np.array([0.55, 0.45]), _ball())
    noise = np.random.default_rng(1).random((20,) * 3) >= 0.5
    assert "topology" in domain.check(np.array([1.0, 0.0]), noise)  # confident, yet unlike any training grid
    assert domain.max_objects == 4  # one object each: ceil(1.25 * 1 + 2)
    beads = np.zeros((20,) * 3, np.uint8)
    for i in range(5):
        beads[2 + 3 * i : 4 + 3 * i, 5:7, 5:7] = 1  # five 8-voxel beads, apart
    beads[15, 15, 15] = 1  # a lone voxel is noise, not an object
    assert count_objects(beads) == 5 and count_objects(np.zeros((3, 3, 3))) == 0
    assert "holds 5 separate objects (at most 4 expected)" in domain.check(np.array([1.0, 0.0]), beads)
    stored = Domain.from_metadata({"domain": domain.to_dict()}, 2)
    assert stored == domain and stored.calibrated


def test_models_without_a_domain_get_the_fallback() -> None:
    domain = Domain.from_metadata({"best_epoch": 3}, 10)
    assert domain == fallback_domain(10) and not domain.calibrated
    assert domain.max_probability == pytest.approx(0.3) and domain.euler_range == (FALLBACK_MIN_EULER, None)
    assert domain.check(np.full(10, 0.1), _ball()) is not None and domain.check(np.eye(10)[0], _ball()) is None
    with pytest.raises(ValueError, match="needs validation"):
        calibrate_domain(np.zeros((0, 2)), np.zeros((0, 4, 4, 4)))
