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


@pytest.mark.parametrize("kwargs", [{"start": 1.0}, {"gamma": 0.0}, {"max_opacity": 0.0}])
def test_opacity_curve_validates(kwargs):
    with pytest.raises(ValueError):
        OpacityCurve(**kwargs)
