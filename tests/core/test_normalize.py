"""PercentileNormalizer: before maps percentiles to [0, 1]; after returns to target units; JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voxelstudio.core.normalize import PercentileNormalizer


def test_before_maps_the_low_and_high_percentiles_to_zero_and_one() -> None:
    x = np.linspace(0.0, 1000.0, 1001).reshape(7, 11, 13)
    normalizer = PercentileNormalizer(p_low=2.0, p_high=99.8)

    y = normalizer.before(x)

    lo, hi = np.percentile(x, [2.0, 99.8])
    assert y.dtype == np.float32
    assert y.shape == x.shape
    assert np.mean(y < 0) == pytest.approx(0.02, abs=0.002)  # 2 % below the low percentile
    assert np.mean(y > 1) == pytest.approx(0.002, abs=0.002)
    np.testing.assert_allclose(y, (x - lo) / (hi - lo), rtol=1e-5, atol=1e-6)
    assert normalizer.input_range(x) == pytest.approx((lo, hi))


def test_before_uses_a_given_range_instead_of_percentiles() -> None:
    y = PercentileNormalizer().before(np.array([10.0, 15.0, 20.0]), value_range=(10.0, 20.0))
    np.testing.assert_allclose(y, [0.0, 0.5, 1.0])


def test_before_on_a_constant_volume_stays_finite() -> None:
    y = PercentileNormalizer().before(np.full((4, 4, 4), 7.0))
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y, 0.0)


def test_after_returns_to_target_units_and_inverts_target_to_unit() -> None:
    normalizer = PercentileNormalizer(out_low=-1.0, out_high=3.0)
    unit = np.array([0.0, 0.25, 1.0], dtype=np.float32)

    target_units = normalizer.after(unit)

    assert target_units.dtype == np.float32
    np.testing.assert_allclose(target_units, [-1.0, 0.0, 3.0])
    np.testing.assert_allclose(normalizer.target_to_unit(target_units), unit, atol=1e-7)


def test_default_after_is_the_identity_on_unit_targets() -> None:
    y = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(PercentileNormalizer().after(y), y)


@pytest.mark.parametrize(("low", "high"), [(50.0, 50.0), (60.0, 40.0), (-1.0, 99.0), (1.0, 100.5)])
def test_invalid_percentiles_are_refused(low, high) -> None:
    with pytest.raises(ValueError, match="percentiles"):
        PercentileNormalizer(p_low=low, p_high=high)


def test_json_round_trip() -> None:
    normalizer = PercentileNormalizer(p_low=1.0, p_high=99.0, out_low=0.1, out_high=0.9)

    restored = PercentileNormalizer.from_dict(json.loads(json.dumps(normalizer.to_dict())))

    assert restored == normalizer
    assert normalizer.to_dict() == {"p_low": 1.0, "p_high": 99.0, "out_low": 0.1, "out_high": 0.9}
    assert PercentileNormalizer.from_dict({"p_low": 3, "p_high": "97"}) == PercentileNormalizer(3.0, 97.0)
