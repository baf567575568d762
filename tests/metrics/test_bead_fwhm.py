"""Bead FWHM: known Gaussian widths, sub-voxel centres, ramps, spacing and rejected beads."""

from __future__ import annotations

import numpy as np
import pytest
from bead_volumes import BeadField, gaussian_beads

from voxelstudio.metrics import bead_fwhm, fwhm_ratio
from voxelstudio.metrics.fwhm import profile_fwhm

FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))  # 2.3548


@pytest.mark.parametrize("centre", [(16.0, 16.0, 20.0), (16.5, 15.7, 20.3)])
def test_anisotropic_gaussian_has_the_analytic_widths(centre: tuple[float, float, float]) -> None:
    volume = gaussian_beads((32, 32, 40), [centre], (1.5, 1.5, 4.0))
    result = bead_fwhm(volume)
    assert result["n"] == 1
    assert result["lateral"] == pytest.approx(FWHM_PER_SIGMA * 1.5, rel=0.03)
    assert result["axial"] == pytest.approx(FWHM_PER_SIGMA * 4.0, rel=0.03)
    assert result["ratio"] == pytest.approx(4.0 / 1.5, rel=0.03)


def test_widths_survive_an_offset_and_a_smooth_ramp() -> None:
    volume = gaussian_beads((32, 32, 40), [(16.5, 15.7, 20.3)], (1.5, 1.5, 4.0))
    y, x, z = np.indices(volume.shape)
    result = bead_fwhm(volume + 50.0 + 0.02 * y - 0.02 * x + 0.02 * z)
    assert result["lateral"] == pytest.approx(FWHM_PER_SIGMA * 1.5, rel=0.03)
    assert result["axial"] == pytest.approx(FWHM_PER_SIGMA * 4.0, rel=0.03)


def test_spacing_gives_physical_units_and_the_physical_ratio() -> None:
    volume = gaussian_beads((32, 32, 24), [(16, 16, 12)], (2.0, 2.0, 2.0))
    result = bead_fwhm(volume, spacing=(0.1, 0.1, 0.3))
    assert result["lateral"] == pytest.approx(FWHM_PER_SIGMA * 0.2, rel=0.03)
    assert result["axial"] == pytest.approx(FWHM_PER_SIGMA * 0.6, rel=0.03)
    assert result["ratio"] == pytest.approx(3.0, rel=0.03)
    assert fwhm_ratio(volume, (0.1, 0.1, 0.3)) == result


def test_medians_over_many_beads(bead_field: BeadField, bead_positions: np.ndarray) -> None:
    result = bead_fwhm(bead_field(bead_positions, sigma=(1.0, 1.0, 2.0)))
    assert result["n"] >= 8
    assert result["lateral"] == pytest.approx(FWHM_PER_SIGMA, rel=0.03)
    assert result["ratio"] == pytest.approx(2.0, rel=0.03)


def test_beads_at_the_border_or_touching_another_are_rejected() -> None:
    shape = (40, 40, 24)
    lone = (10, 10, 12)
    at_border = (30, 30, 1)
    pair = [(28, 8, 12), (28, 11, 12)]
    volume = gaussian_beads(shape, [lone, at_border, *pair], (1.5, 1.5, 3.0))
    peaks = np.array([lone, at_border, *pair])
    assert bead_fwhm(volume, peaks=peaks)["n"] == 1
    assert bead_fwhm(volume, peaks=peaks[1:2]) == {"lateral": None, "axial": None, "ratio": None, "n": 0}


def test_a_neighbour_that_is_not_measured_still_disqualifies_a_bead() -> None:
    lone, pair = (10, 10, 12), [(28, 8, 12), (28, 11, 12)]
    volume = gaussian_beads((40, 40, 24), [lone, *pair], (1.5, 1.5, 3.0))
    measured = np.array([lone, pair[0]])
    assert bead_fwhm(volume, peaks=measured)["n"] == 2
    assert bead_fwhm(volume, peaks=measured, neighbours=np.array([lone, *pair]))["n"] == 1


def test_profile_fwhm_interpolates_and_refuses_unfinished_profiles() -> None:
    triangle = np.array([0.0, 0.0, 1.0, 2.0, 1.0, 0.0, 0.0])
    assert profile_fwhm(triangle, 3) == pytest.approx(2.0)
    assert profile_fwhm(np.array([2.0, 1.5, 1.0, 0.4]), 0) is None
    assert profile_fwhm(np.zeros(5), 2) is None
