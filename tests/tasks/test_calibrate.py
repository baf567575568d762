"""Calibration recovers the known parameters of a simulated scan (the issue's tolerances)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voxelstudio.core.volume import Volume
from voxelstudio.sim import SimParams, simulate_pair
from voxelstudio.sim.params import OpticsParams
from voxelstudio.tasks.calibrate import Calibration, calibrate_volumes, model_fwhm_um, resolve_spacing

TRUTH = SimParams(
    optics=OpticsParams(na=1.1, ns=1.33, depth_um=4.0, pixel_um=0.1, z_step_um=0.2),
    bead_density=8e-5, photons=300.0, read_noise=2.0, offset=100.0, haze=0.2, background=0.2,
    out_of_stack=0.0,  # defocused light of beads outside the stack hides 2 counts of read noise (see the report)
)  # fmt: skip


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    raw, _ = simulate_pair((112, 112, 32), TRUTH, seed=0)
    return calibrate_volumes([Volume(raw, TRUTH.optics.voxel_size_um)], wavelength_um=0.52)


def test_calibration_recovers_optics_and_camera(calibration: Calibration) -> None:
    params = calibration.params
    assert calibration.converged
    assert len(calibration.beads.amplitudes) >= 5
    assert params.optics.na == pytest.approx(TRUTH.optics.na, abs=0.05)
    assert params.photons == pytest.approx(TRUTH.photons, rel=0.25)
    assert params.read_noise == pytest.approx(TRUTH.read_noise, abs=1.0)
    assert params.offset == pytest.approx(TRUTH.offset, abs=5.0)
    assert calibration.fitted["gain"][0] == pytest.approx(1.0, rel=0.1)
    assert params.haze == pytest.approx(TRUTH.haze, abs=0.1)
    assert params.background == pytest.approx(TRUTH.background, abs=0.1)


def test_fitted_model_has_the_true_axial_width(calibration: Calibration) -> None:
    half = tuple((n - 1) // 2 for n in calibration.beads.image.shape)
    true = model_fwhm_um(TRUTH.optics, TRUTH.bead_sigma_vox, half)
    assert calibration.fwhm_um["model"]["axial"] == pytest.approx(true["axial"], rel=0.1)
    assert calibration.fwhm_um["model"]["lateral"] == pytest.approx(true["lateral"], rel=0.1)
    assert calibration.fwhm_um["measured"]["axial"] == pytest.approx(true["axial"], rel=0.1)
    for name in ("na", "ns", "depth_um", "photons", "read_noise"):
        value, error = calibration.fitted[name]
        assert np.isfinite(value) and error > 0


def test_a_stack_saved_in_reverse_is_fitted_as_reversed_with_the_same_optics(calibration: Calibration) -> None:
    """The aberrated PSF's longer tail shows the stack's direction; the symmetric-looking fit is not fooled."""
    raw, _ = simulate_pair((112, 112, 32), TRUTH, seed=0)
    reversed_ = calibrate_volumes([Volume(raw[:, :, ::-1].copy(), TRUTH.optics.voxel_size_um)], wavelength_um=0.52)
    assert reversed_.params.optics.z_reversed and not calibration.params.optics.z_reversed
    assert reversed_.converged
    assert reversed_.optics_fit.relative_residual == pytest.approx(calibration.optics_fit.relative_residual, rel=0.05)
    for name in ("na", "ns", "depth_um"):
        assert getattr(reversed_.params.optics, name) == pytest.approx(getattr(calibration.params.optics, name), 0.02)
    np.testing.assert_allclose(reversed_.beads.image, calibration.beads.image[:, :, ::-1], rtol=0.05, atol=0.05)


def test_resolve_spacing_prefers_the_option_and_needs_one() -> None:
    known = Volume(np.zeros((4, 4, 4), np.float32), (0.1, 0.1, 0.3))
    unknown = Volume(np.zeros((4, 4, 4), np.float32), name="scan")
    assert resolve_spacing([known], None) == (0.1, 0.1, 0.3)
    assert resolve_spacing([unknown], (0.2, 0.2)) == (0.2, 0.2, None)
    with pytest.raises(ValueError, match="voxel size not in the file; give --voxel-size"):
        resolve_spacing([unknown], None)
    with pytest.raises(ValueError, match=r"different voxel sizes \(.*0\.1x0\.1x0\.3 µm; .*0\.1x0\.1x0\.2 µm\)"):
        resolve_spacing([known, known.replace(spacing=(0.1, 0.1, 0.2))], None)
    with pytest.raises(ValueError, match="square pixels"):
        resolve_spacing([known], (0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match=r"expected positive numbers Y,X,Z \(or Y,X\) in µm, got 0,0\.1,0\.1$"):
        resolve_spacing([known], (0.0, 0.1, 0.1))
    with pytest.raises(ValueError, match=r"pixels are not square \(y 0.1 µm, x 0.13 µm\)"):  # from the file too
        resolve_spacing([known.replace(spacing=(0.1, 0.13, 0.3))], None)


def test_undetermined_values_are_null_in_strict_json():
    from voxelstudio.tasks.calibration_file import _finite_or_none

    report = {"fitted": {"na": {"value": 1.4, "sd": float("inf")}}, "fit": {"noise_ratio": np.float64("nan")}}
    cleaned = _finite_or_none(report)
    assert cleaned == {"fitted": {"na": {"value": 1.4, "sd": None}}, "fit": {"noise_ratio": None}}
    json.dumps(cleaned, allow_nan=False)


def test_a_fit_that_misses_the_measured_axial_width_is_not_converged(calibration: Calibration) -> None:
    """The fit's residual alone can look fine on a few noisy beads; the axial width cross-check catches a miss."""
    import dataclasses

    measured = calibration.axial_check_um["measured"]
    missed = dataclasses.replace(calibration, axial_check_um={"measured": measured, "model": measured * 0.6})
    assert not missed.converged and "axial FWHM" in missed.problems[0]
    cut = dataclasses.replace(calibration, axial_check_um={**calibration.axial_check_um, "measured": None})
    assert not cut.converged and "does not fall to half its peak along z" in cut.problems[0]
    assert calibration.problems == []


def test_a_dim_hazy_aberrated_scan_is_trusted_when_its_fit_is_right() -> None:
    """40 photons, haze 0.45, NA 1.3 oil into water 6 µm deep (a 1.25 µm long bead in a 3.2 µm stack): one line
    through the noisy averaged bead read 0.83 µm and failed the cross-check of a right fit (regression)."""
    optics = OpticsParams(na=1.3, wavelength_um=0.58, depth_um=6.0)
    params = SimParams(optics=optics, photons=40.0, haze=0.45, background=0.3)
    raw, _ = simulate_pair((256, 256, 32), params, seed=900)
    calibration = calibrate_volumes([Volume(raw, optics.voxel_size_um)], wavelength_um=optics.wavelength_um)
    assert calibration.problems == []
    true = model_fwhm_um(optics, params.bead_sigma_vox, (7, 7, 32))["axial"]
    assert calibration.fwhm_um["model"]["axial"] == pytest.approx(true, rel=0.1)


def test_a_bead_longer_than_its_box_is_averaged_again_in_a_longer_box() -> None:
    from scipy import ndimage

    from voxelstudio.metrics.bead_average import average_beads
    from voxelstudio.tasks.calibrate import axially_cut, lengthen_if_cut

    shape, rng = (96, 96, 48), np.random.default_rng(1)
    volume = np.zeros(shape, np.float32)
    for y, x in rng.choice(np.arange(12, 84, 12), size=(10, 2)):
        volume[y + rng.integers(-2, 3), x + rng.integers(-2, 3), 24] = 1.0
    volume = ndimage.gaussian_filter(volume, (1.2, 1.2, 5.0)) * 2000 + 100 + rng.normal(0, 1, shape)
    half = (5, 5, 4)
    beads = average_beads([volume], half, min_beads=3)
    assert axially_cut(beads.image)  # sigma 5 voxels along z: half maximum lies 5.9 voxels from the peak
    longer, again = lengthen_if_cut([volume], half, beads, shape)
    assert longer[:2] == half[:2] and longer[2] > 6 and not axially_cut(again.image)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"na": 3.0}, r"--na: must be in \[0.8, 1.5\]"),
        ({"wavelength_um": 0.9}, r"--wavelength: must be in \[0.4, 0.7\]"),
        ({"ni": 1.0}, r"--ni: must be in \[1.33, 1.52\]"),
    ],
)
def test_given_optics_outside_the_simulators_range_are_refused_before_any_analysis(given, message) -> None:
    blank = Volume(np.zeros((16, 16, 8), np.float32), (0.1, 0.1, 0.2), name="blank")  # would fail the analysis
    with pytest.raises(ValueError, match=message):
        calibrate_volumes([blank], **given)


def test_a_measured_psf_that_cannot_be_used_is_named_in_the_error(tmp_path) -> None:
    from voxelstudio.io import save_volume
    from voxelstudio.tasks.calibration_file import check_measured_psf

    psf = np.zeros((11, 11, 7), np.float32)
    psf[0, 5, 3] = 1.0  # its brightest point on the stack's edge: a hot pixel, not a bead
    path = save_volume(Volume(psf, (0.1, 0.1, 0.2)), tmp_path / "psf.tif")
    with pytest.raises(ValueError, match=r"psf\.tif: the PSF's brightest point .* too near the stack's edge"):
        check_measured_psf(path, (0.1, 0.1, 0.2))


def test_the_ambient_variation_is_read_as_the_simulator_defines_it() -> None:
    """Largest deviation from the mean, relative to it: a linear ramp's slopes read 0.03-0.19 for a true 0.5."""
    from voxelstudio.sim.ambient import smooth_background
    from voxelstudio.tasks.calibrate_ambient import estimate_ambient

    for seed in range(3):
        rng = np.random.default_rng(seed)
        background = smooth_background((128, 128, 32), (0.1, 0.1, 0.2), level=60.0, variation=0.5, scale_um=10.0,
                                       rng=rng)  # fmt: skip
        scan = rng.poisson(background).astype(np.float32)
        found = estimate_ambient([scan], photons=300.0, sigma_vox=1.0, spacing=(0.1, 0.1, 0.2))
        assert found.variation == pytest.approx(0.5, abs=0.2)
