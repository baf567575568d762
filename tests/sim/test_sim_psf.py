"""The Gibson-Lanni PSF: normalisation, centring, symmetry, textbook widths and agreement with microscPSF-py."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.sim import OpticsParams, make_psf
from voxelstudio.sim.params import COVERSLIP_DESIGN_INDEX, COVERSLIP_DESIGN_UM
from voxelstudio.sim.psf import focal_offset_um, radial_psf

FINE = 0.02  # µm: sampling fine enough to measure widths of a few hundred nanometres
MATCHED_OIL = OpticsParams(na=1.4, ni=1.515, ns=1.515, depth_um=0.0)


def _fwhm_um(profile: np.ndarray, step: float) -> float:
    profile = np.asarray(profile, dtype=np.float64)
    above = np.flatnonzero(profile >= profile.max() / 2)
    left, right = above[0], above[-1]
    half = profile.max() / 2
    x_left = left - (profile[left] - half) / (profile[left] - profile[left - 1])
    x_right = right + (profile[right] - half) / (profile[right] - profile[right + 1])
    return float((x_right - x_left) * step)


def _widths(optics: OpticsParams) -> tuple[float, float]:
    psf = make_psf(optics, (41, 41, 201), (FINE, FINE, FINE))
    return _fwhm_um(psf[:, 20, 100], FINE), _fwhm_um(psf[20, 20, :], FINE)


def test_psf_is_float32_sums_to_one_and_peaks_in_the_centre() -> None:
    psf = make_psf(OpticsParams(), (33, 31, 21))
    assert psf.shape == (33, 31, 21)
    assert psf.dtype == np.float32
    assert psf.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(np.argmax(psf), psf.shape) == (16, 15, 10)
    assert psf.min() >= 0


def test_psf_is_symmetric_in_x_and_y() -> None:
    psf = make_psf(OpticsParams(), (31, 31, 15))
    np.testing.assert_allclose(psf, psf[::-1, :, :], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(psf, psf[:, ::-1, :], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(psf, psf.transpose(1, 0, 2), rtol=1e-5, atol=1e-9)


def test_psf_is_axially_symmetric_only_without_index_mismatch() -> None:
    matched = make_psf(MATCHED_OIL, (15, 15, 41))
    np.testing.assert_allclose(matched, matched[:, :, ::-1], rtol=1e-4, atol=1e-9)
    mismatched = make_psf(OpticsParams(ns=1.33, depth_um=5.0), (15, 15, 41))
    assert np.abs(mismatched - mismatched[:, :, ::-1]).max() > 0.05 * mismatched.max()


def test_a_reversed_stack_has_the_psf_planes_in_reverse_order() -> None:
    forward = make_psf(OpticsParams(ns=1.33, depth_um=5.0), (15, 15, 41))
    backward = make_psf(OpticsParams(ns=1.33, depth_um=5.0, z_reversed=True), (15, 15, 41))
    np.testing.assert_allclose(backward, forward[:, :, ::-1], rtol=1e-5, atol=1e-9)
    assert np.abs(backward - forward).max() > 0.05 * forward.max()


def test_lateral_and_axial_widths_match_textbook_values_for_matched_oil() -> None:
    lateral, axial = _widths(MATCHED_OIL)
    assert lateral == pytest.approx(0.51 * 0.52 / 1.4, rel=0.06)  # Airy FWHM 0.51 λ/NA
    assert axial == pytest.approx(0.88 * 0.52 / (1.515 - np.sqrt(1.515**2 - 1.4**2)), rel=0.12)
    assert 2.4 <= axial / lateral <= 3.5


def test_index_mismatch_deep_in_water_elongates_the_psf() -> None:
    lateral_0, axial_0 = _widths(MATCHED_OIL)
    lateral, axial = _widths(OpticsParams(ns=1.33, depth_um=10.0))
    assert axial / lateral > 1.3 * axial_0 / lateral_0
    assert axial / lateral > 3.5


def test_lower_na_widens_the_psf() -> None:
    lateral_14, axial_14 = _widths(MATCHED_OIL)
    lateral_10, axial_10 = _widths(OpticsParams(na=1.0, ni=1.33, ns=1.33, depth_um=0.0))
    assert lateral_10 == pytest.approx(lateral_14 * 1.4 / 1.0, rel=0.1)
    assert axial_10 > 1.5 * axial_14


def test_focal_offset_is_zero_when_matched_and_follows_the_depth_in_water() -> None:
    assert focal_offset_um(MATCHED_OIL) == pytest.approx(0.0, abs=0.002)
    assert focal_offset_um(OpticsParams(ni=1.33, ns=1.33, na=1.2, depth_um=3.0)) == pytest.approx(-3.0, abs=0.002)
    shift = focal_offset_um(OpticsParams(ns=1.33, depth_um=4.0))
    assert -4.0 * 1.6 < shift < -4.0 * 1.515 / 1.33 + 0.2  # oil into water: the stage moves further than the depth


def test_make_psf_rejects_bad_shape_and_spacing() -> None:
    with pytest.raises(ValueError, match="shape"):
        make_psf(OpticsParams(), (8, 8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        make_psf(OpticsParams(), (8, 0, 8))
    with pytest.raises(ValueError, match="spacing"):
        make_psf(OpticsParams(), (8, 8, 8), (0.1, -0.1, 0.1))


def test_an_na_above_the_sample_index_is_not_seen() -> None:
    water = OpticsParams(na=1.40, ns=1.33, depth_um=5.0)
    assert water.effective_na == 1.33 and OpticsParams(na=1.2, ns=1.45).effective_na == 1.2
    shapes = [make_psf(OpticsParams(na=na, ns=1.33, depth_um=5.0), (33, 33, 33)) for na in (1.40, 1.45, 1.30)]
    first, same, lower = (p / p.sum() for p in shapes)
    assert np.allclose(first, same, rtol=1e-5, atol=1e-9)  # both capped at 1.33: one PSF
    assert not np.allclose(first, lower, rtol=1e-3, atol=1e-6)  # below the cap the NA shows


# Below: agreement with the reference implementation, when it is installed (it is in the test extra).
microscPSF = pytest.importorskip("microscPSF.microscPSF", reason="microscPSF-py is not installed")

CASES = [
    OpticsParams(ns=1.515, depth_um=0.0),
    OpticsParams(),
    OpticsParams(ns=1.45, depth_um=5.0, wavelength_um=0.6, tg_um=172.0),
    OpticsParams(na=1.2, ni=1.33, ns=1.33, depth_um=3.0),
]


def _microscope(optics: OpticsParams) -> dict[str, float]:
    params = dict(microscPSF.m_params)
    params.update(NA=optics.na, ni=optics.ni, ni0=optics.ni, ns=optics.ns, ng=optics.ng, ng0=COVERSLIP_DESIGN_INDEX)
    params.update(tg=optics.tg_um, tg0=COVERSLIP_DESIGN_UM)
    return params


@pytest.mark.parametrize("optics", CASES[1:3])
def test_radial_psf_matches_microscpsf_direct_integration(optics: OpticsParams) -> None:
    r = np.array([0.0, 0.1, 0.25, 0.5])
    z = focal_offset_um(optics) + np.array([-1.0, -0.3, 0.0, 0.4])
    expected = microscPSF.gLZRFocalScanSlow(_microscope(optics), r, z, pz=optics.depth_um, wvl=optics.wavelength_um)
    ours = radial_psf(optics, r, z)
    np.testing.assert_allclose(ours / ours.max(), expected, atol=2e-3)


@pytest.mark.parametrize("optics", CASES)
def test_make_psf_matches_microscpsf_xyz_focal_scan(optics: OpticsParams) -> None:
    size, depth, step = 25, 31, 0.06
    z = focal_offset_um(optics) + (np.arange(depth) - depth // 2) * step
    expected = microscPSF.gLXYZFocalScan(
        _microscope(optics), step, size, z, pz=optics.depth_um, wvl=optics.wavelength_um
    ).transpose(1, 2, 0)
    ours = make_psf(optics, (size, size, depth), (step, step, step))
    # microscPSF's fast solver approximates the pupil phase by a Bessel series: a few per cent of the peak.
    np.testing.assert_allclose(ours / ours.max(), expected / expected.max(), atol=0.07)
    assert np.corrcoef(ours.ravel(), expected.ravel())[0, 1] > 0.99
