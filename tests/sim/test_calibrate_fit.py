"""The optics fit recovers the NA and the bead's shift from a simulated bead image; jitter and measured PSFs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from voxelstudio.sim import SimParams, make_psf, simulate_pair
from voxelstudio.sim.calibrate import bead_model, fit_optics
from voxelstudio.sim.jitter import FIXED_OPTICS, jitter_params
from voxelstudio.sim.measured_psf import prepare_psf, simulate_pair_with_psf
from voxelstudio.sim.pair import psf_shape_for
from voxelstudio.sim.params import OpticsParams

SHAPE = (13, 13, 13)


def test_fit_recovers_na_sigma_and_shift_of_a_noisy_bead() -> None:
    truth = OpticsParams(na=1.1, pixel_um=0.1, z_step_um=0.2)
    clean = 500.0 * bead_model(truth, 1.2, SHAPE, (0.3, -0.2, 0.6))
    clean = clean / clean.max() * 500.0 + 20.0
    bead = clean + np.random.default_rng(0).normal(0.0, 3.0, SHAPE)
    start = dataclasses.replace(truth, na=1.3)
    fit = fit_optics(bead, start, ("na",))
    assert fit.optics.na == pytest.approx(1.1, abs=0.02)
    assert fit.bead_sigma_vox == pytest.approx(1.2, abs=0.1)
    assert 0 < fit.errors["na"] < 0.02
    assert fit.converged and fit.noise_ratio < 1.5
    np.testing.assert_allclose(fit.model, clean, atol=5.0)


def test_a_bead_deep_in_a_mismatched_sample_is_fitted_and_its_amplitude_kept() -> None:
    """8 µm into water at NA 1.4 the PSF's brightest point lies 14 planes from the least-squares focus the model is
    centred on; the z shift must reach it (it stopped at 8 planes: a residual of 1 %, photons low by 5 %)."""
    truth = OpticsParams(na=1.4, wavelength_um=0.52, ns=1.33, depth_um=8.0, pixel_um=0.1, z_step_um=0.1)
    shape = (15, 15, 61)
    offset = np.unravel_index(np.argmax(bead_model(truth, 1.0, shape, (0.0, 0.0, 0.0))), shape)[2] - shape[2] // 2
    assert abs(offset) > 8  # beyond the shift the fit used to allow
    bead = 100.0 * bead_model(truth, 1.0, shape, (0.0, 0.0, float(-offset)))  # brightest voxel at the centre
    start = dataclasses.replace(truth, na=1.2, depth_um=1.0)
    fit = fit_optics(bead, start, ("na", "ns", "depth_um"))
    assert fit.relative_residual < 0.005 and fit.optics.depth_um == pytest.approx(8.0, abs=0.3)
    assert fit.amplitude == pytest.approx(bead.max(), rel=0.01)


def test_the_z_shift_reaches_beads_deeper_than_any_starting_point() -> None:
    """14 µm into water the brightest point lies 12.8 planes of 0.2 µm from the least-squares focus; the starts
    (depth 1 and 8 µm) lie within 8 planes, which the z shift used to stop at: depth fitted as 9.6 µm, "converged"."""
    truth = OpticsParams(na=1.4, wavelength_um=0.52, ns=1.33, depth_um=14.0, pixel_um=0.1, z_step_um=0.2)
    shape = (15, 15, 17)
    wide = (15, 15, 61)
    offset = np.unravel_index(np.argmax(bead_model(truth, 1.0, wide, (0.0, 0.0, 0.0))), wide)[2] - wide[2] // 2
    assert abs(offset) > 12
    bead = 100.0 * bead_model(truth, 1.0, shape, (0.0, 0.0, float(-offset)))
    fit = fit_optics(bead, dataclasses.replace(truth, ns=1.45, depth_um=1.0), ("ns", "depth_um"))
    assert fit.optics.depth_um == pytest.approx(14.0, abs=0.5) and fit.relative_residual < 0.01


def test_an_na_the_pupil_cuts_off_is_not_determined() -> None:
    """Above the sample's index the pupil is cut at that index, so the bead is the same for any larger NA: its
    standard error is infinite (a pseudo-inverse reported it as exact, "NA 1.48 ± 0.00"), the others' stay finite."""
    truth = OpticsParams(na=1.45, wavelength_um=0.52, ns=1.33, depth_um=0.0, pixel_um=0.1, z_step_um=0.2)
    bead = 100.0 * bead_model(truth, 1.0, SHAPE, (0.0, 0.0, 0.0))
    fit = fit_optics(bead, dataclasses.replace(truth, na=1.4), ("na",))
    assert fit.optics.na > truth.effective_na and fit.errors["na"] == np.inf
    assert np.isfinite(fit.errors["bead_sigma_vox"])


def test_standard_errors_match_the_covariance_and_flag_what_the_data_do_not_move() -> None:
    from voxelstudio.sim.calibrate import standard_errors

    jacobian = np.random.default_rng(0).normal(size=(50, 3))
    expected = np.sqrt(np.diag(np.linalg.inv(jacobian.T @ jacobian)) * 2.0)
    np.testing.assert_allclose(standard_errors(jacobian, 2.0), expected, rtol=1e-9)
    jacobian[:, 1] = 0.0
    errors = standard_errors(jacobian, 2.0)
    assert errors[1] == np.inf and np.isfinite(errors[[0, 2]]).all()


def test_a_wrong_model_is_not_converged() -> None:
    # a cube is no microscope bead: the residual stays far above the noise
    bead = np.zeros(SHAPE)
    bead[4:9, 4:9, 4:9] = 100.0
    bead += np.random.default_rng(0).normal(0.0, 1.0, SHAPE)
    fit = fit_optics(bead, OpticsParams(pixel_um=0.1, z_step_um=0.2), ("na",))
    assert not fit.converged and fit.noise_ratio > 3


def test_fit_rejects_fields_it_cannot_fit() -> None:
    with pytest.raises(ValueError, match="cannot fit optics field"):
        fit_optics(np.ones(SHAPE), OpticsParams(), ("ni",))


def test_jitter_stays_near_and_in_range_and_keeps_the_instrument() -> None:
    params = SimParams(optics=OpticsParams(na=1.45, ns=1.4, depth_um=6.0), photons=300.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        drawn = jitter_params(params, rng, 0.1)
        assert drawn.optics.na < drawn.optics.ni
        assert 0.9 * 300 <= drawn.photons <= 1.1 * 300
        assert 0.9 * 6.0 <= drawn.optics.depth_um <= 1.1 * 6.0
        for name in FIXED_OPTICS:
            assert getattr(drawn.optics, name) == getattr(params.optics, name)
    assert jitter_params(params, rng, 0.0) is params
    with pytest.raises(ValueError, match="jitter must be in"):
        jitter_params(params, rng, 1.5)


def test_jitter_moves_an_index_by_a_share_of_its_mismatch_and_piles_nothing_on_a_bound() -> None:
    """Relative jitter moved ns = 1.40 by up to 0.14 (more than its mismatch with oil, 0.115) and put half the
    draws of a water sample (ns 1.33, the range's bottom) on that bound, the rest up to 1.46."""
    rng = np.random.default_rng(0)
    mismatched = SimParams(optics=OpticsParams(na=1.2, ni=1.515, ns=1.40), photons=4900.0)
    draws = [jitter_params(mismatched, rng, 0.1) for _ in range(400)]
    ns = np.array([d.optics.ns for d in draws])
    assert ns.min() >= 1.515 - 1.1 * 0.115 - 1e-9 and ns.max() <= 1.515 - 0.9 * 0.115 + 1e-9
    photons = np.array([d.photons for d in draws])
    assert photons.max() <= 5000.0 and np.mean(photons == 5000.0) == 0 and abs(photons.mean() - 4900.0) < 10
    water = SimParams(optics=OpticsParams(na=1.2, ni=1.33, ns=1.33, wavelength_um=0.5))
    na = np.array([jitter_params(water, rng, 0.1).optics.na for _ in range(400)])
    assert na.max() <= 1.32 and np.mean(na == 1.32) == 0 and abs(na.mean() - 1.2) < 0.01
    assert {jitter_params(water, rng, 0.1).optics.ns for _ in range(20)} == {1.33}


def test_measured_psf_simulation_matches_the_simulator_with_its_own_psf() -> None:
    params = SimParams(bead_density=3e-4, out_of_stack=0.0)
    shape = (32, 32, 12)
    raw, target = simulate_pair(shape, params, seed=4)
    raw2, target2 = simulate_pair_with_psf(shape, params, make_psf(params.optics, psf_shape_for(shape)), seed=4)
    np.testing.assert_array_equal(target, target2)
    np.testing.assert_allclose(raw, raw2, atol=1e-3)


def test_a_different_measured_psf_changes_the_raw_volume() -> None:
    params = SimParams(
        bead_density=3e-4, read_noise=0.0, background=0.0, haze=0.0, offset=0.0, photons=5000.0, out_of_stack=0.0
    )
    shape = (32, 32, 12)
    point = np.zeros((5, 5, 5), dtype=np.float32)
    point[2, 2, 2] = 1.0  # no blur at all: beads keep the target's isotropic shape
    sharp, target = simulate_pair_with_psf(shape, params, point, seed=4)
    blurred, _ = simulate_pair(shape, params, seed=4)
    y, x, z = np.unravel_index(int(np.argmax(target[:, :, 2:-2])), (32, 32, 8))
    z += 2

    def tail(raw: np.ndarray) -> float:
        return float(raw[y, x, z + 2] + raw[y, x, z - 2]) / float(raw[y, x, z])

    assert tail(sharp) < 0.5 * tail(blurred)  # the Gibson-Lanni PSF elongates beads along z


def test_prepare_psf_centres_and_rejects_bad_stacks() -> None:
    psf = np.zeros((9, 9, 9))
    psf[2, 3, 4] = 2.0
    kernel = prepare_psf(psf)
    assert kernel.shape == (5, 7, 9) and kernel[2, 3, 4] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3-D"):
        prepare_psf(np.ones((4, 4)))
    with pytest.raises(ValueError, match="no light"):
        prepare_psf(np.zeros((3, 3, 3)))


def test_prepare_psf_refuses_a_brightest_point_at_the_stacks_edge() -> None:
    truth = OpticsParams(na=1.2, pixel_um=0.1, z_step_um=0.1)
    psf = make_psf(truth, (33, 33, 31))
    assert prepare_psf(psf).shape == (33, 33, 31)
    hot = psf.copy()
    hot[0, 5, 3] = 1.01 * psf.max()  # one hot camera pixel at the edge: it once made a 1x11x7 kernel, no blur
    with pytest.raises(ValueError, match=r"brightest point \(0, 5, 3\) is too near the stack's edge: .* 1x11x7 "):
        prepare_psf(hot)
    cut = psf[:, :, 13:]  # the focus 2 planes from the end: the axial tail would be lost
    with pytest.raises(ValueError, match=r"a kernel centred on it is 33x33x5 voxels and keeps [0-9]+% of the light"):
        prepare_psf(cut)


def test_measured_psf_simulation_has_beads_outside_the_stack_too() -> None:
    """Out-of-stack beads light the raw through the measured PSF as through Gibson-Lanni's, and leave the target's
    inner planes alone; a layer thicker than the measured stack's half length adds nothing more."""
    quiet = SimParams(background=0.0, haze=0.0, read_noise=0.0, photons=5000.0, offset=0.0, bead_density=2e-4)
    shape = (64, 64, 16)
    psf = make_psf(quiet.optics, psf_shape_for(shape))
    raw_on, target_on = simulate_pair_with_psf(shape, quiet, psf, seed=1)
    raw_off, target_off = simulate_pair_with_psf(shape, quiet.replace(out_of_stack=0.0), psf, seed=1)
    inner = slice(4, shape[2] - 4)
    np.testing.assert_array_equal(target_on[:, :, inner], target_off[:, :, inner])
    added = (raw_on - raw_off)[:, :, inner] / quiet.photons
    assert added.mean() > 0.2 * raw_off[:, :, inner].mean() / quiet.photons
    short = psf[:, :, psf.shape[2] // 2 - 2 : psf.shape[2] // 2 + 3]  # a 5-plane stack: beads 2 planes out at most
    raw_short, _ = simulate_pair_with_psf(shape, quiet, short, seed=1)
    raw_short_off, _ = simulate_pair_with_psf(shape, quiet.replace(out_of_stack=0.0), short, seed=1)
    middle = shape[2] // 2  # 8 planes from either end: out of the short kernel's reach (the noise draws differ)
    assert raw_short[:, :, middle].mean() == pytest.approx(raw_short_off[:, :, middle].mean(), rel=0.01)
