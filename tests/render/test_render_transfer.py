"""Contrast limits, histograms and opacity curves."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.render import OpacityCurve, auto_clim, histogram, symmetric_clim


def test_auto_clim_ignores_outliers_and_nans():
    data = np.linspace(0.0, 1.0, 10_001, dtype=np.float32)
    data[0] = np.nan
    data[1] = 1e6
    low, high = auto_clim(data, 1.0, 99.0)
    assert low == pytest.approx(0.01, abs=1e-3)
    assert high == pytest.approx(0.99, abs=1e-3)


def test_auto_clim_of_constant_or_empty_data_is_a_valid_range():
    assert auto_clim(np.full((3, 3, 3), 5.0, np.float32)) == (5.0, 6.0)
    assert auto_clim(np.full(4, np.nan, np.float32)) == (0.0, 1.0)


def test_symmetric_clim():
    low, high = symmetric_clim(np.array([-2.0, 1.0, 0.5], np.float32), p_high=100.0)
    assert (low, high) == (-2.0, 2.0)
    assert symmetric_clim(np.zeros(5, np.float32)) == (-1.0, 1.0)


def test_histogram_counts_finite_values():
    counts, edges = histogram(np.array([0.0, 0.0, 1.0, np.inf], np.float32), bins=2)
    assert counts.tolist() == [2, 1]
    assert edges[0] == 0.0 and edges[-1] == 1.0


def test_opacity_curve_shape():
    values = OpacityCurve(start=0.5, gamma=1.0, max_opacity=0.8).values(5)
    assert values == pytest.approx([0.0, 0.0, 0.0, 0.4, 0.8])
    steep = OpacityCurve(start=0.0, gamma=3.0).values(11)
    assert np.all(np.diff(steep) >= 0) and steep[5] < 0.5 * steep[-1]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [({"start": 1.0}, "opacity start must be in"), ({"gamma": 0.0}, "opacity gamma must be > 0"),
     ({"max_opacity": 0.0}, "max opacity must be in")],
)  # fmt: skip
def test_opacity_curve_validates(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        OpacityCurve(**kwargs)


def test_big_volumes_use_a_fixed_sample_whose_statistics_match_the_whole():
    from voxelstudio.render.transfer import SAMPLE_SIZE, finite_sample

    rng = np.random.default_rng(1)
    data = rng.exponential(1.0, size=(256, 256, 160)).astype(np.float32)  # 10.5 M voxels, a long bright tail
    data[rng.random(data.shape) < 0.01] = np.nan
    assert data.size > SAMPLE_SIZE
    sample = finite_sample(data)
    assert SAMPLE_SIZE * 0.98 < sample.size < SAMPLE_SIZE and np.isfinite(sample).all()
    np.testing.assert_array_equal(sample, finite_sample(data))  # the same limits every time
    finite = data[np.isfinite(data)]
    exact = np.percentile(finite, [0.1, 99.95])
    np.testing.assert_allclose(auto_clim(data), exact, rtol=0.05)
    counts, edges = histogram(data, bins=64)
    exact_counts, _ = np.histogram(finite, bins=edges)
    np.testing.assert_allclose(counts / counts.sum(), exact_counts / exact_counts.sum(), atol=2e-3)
    small = data[:64, :64, :64]
    assert finite_sample(small).size == np.isfinite(small).sum()  # small volumes use every voxel


def test_signed_opacity_is_transparent_at_zero_and_opaque_at_both_extremes():
    curve = OpacityCurve(start=0.2, gamma=1.0, max_opacity=1.0)
    both = curve.signed_values(5)  # -limit, -limit/2, 0, limit/2, limit
    assert both == pytest.approx([1.0, 0.375, 0.0, 0.375, 1.0])
    assert curve.signed_values(5, side=1) == pytest.approx([0.0, 0.0, 0.0, 0.375, 1.0])
    assert curve.signed_values(5, side=-1) == pytest.approx([1.0, 0.375, 0.0, 0.0, 0.0])
    # limits the user made asymmetric: 0 stays transparent and each sign keeps its own side
    uneven = curve.signed_values(7, side=1, clim=(-0.1, 0.5))  # -0.1, 0, 0.1, ..., 0.5
    assert uneven[1] == 0.0 and uneven[0] == 0.0 and uneven[-1] == pytest.approx(1.0)
    assert curve.signed_values(7, side=-1, clim=(-0.1, 0.5))[0] == pytest.approx(0.0)  # |-0.1| / 0.5 < start
    assert curve.signed_values(7, clim=(-0.5, 0.1))[0] == pytest.approx(1.0)
