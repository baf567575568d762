"""PSNR, SSIM and NRMSE after the affine fit of the prediction to the target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voxelstudio.metrics import affine_fit, nrmse, psnr, ssim
from voxelstudio.metrics.image import ssim_window


@pytest.fixture
def target() -> np.ndarray:
    return np.random.default_rng(0).random((16, 16, 8))


def test_psnr_matches_the_formula_on_a_hand_example() -> None:
    target = np.array([0.0, 1.0, 2.0, 3.0]).reshape(2, 2, 1)
    pred = np.array([0.0, 1.0, 3.0, 2.0]).reshape(2, 2, 1)
    # least squares: scale 0.8, offset 0.3 -> fitted [0.3, 1.1, 2.7, 1.9]; MSE 0.45; range 3
    np.testing.assert_allclose(affine_fit(pred, target).ravel(), [0.3, 1.1, 2.7, 1.9])
    assert psnr(pred, target) == pytest.approx(10 * math.log10(9 / 0.45))
    assert nrmse(pred, target) == pytest.approx(math.sqrt(0.45) / 3)


def test_metrics_ignore_scale_and_offset_of_the_prediction(target: np.ndarray) -> None:
    assert psnr(3.5 * target - 20.0, target) > 200  # exact up to float64 rounding
    assert ssim(3.5 * target - 20.0, target) == pytest.approx(1.0)
    assert nrmse(3.5 * target - 20.0, target) == pytest.approx(0.0, abs=1e-12)
    noisy = target + np.random.default_rng(1).normal(0, 0.1, target.shape)
    assert psnr(0.01 * noisy + 7, target) == pytest.approx(psnr(noisy, target))
    assert ssim(0.01 * noisy + 7, target) == pytest.approx(ssim(noisy, target))


def test_more_noise_scores_worse(target: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    slightly, badly = (target + rng.normal(0, s, target.shape) for s in (0.05, 0.3))
    assert psnr(slightly, target) > psnr(badly, target) > 0
    assert 1 > ssim(slightly, target) > ssim(badly, target)
    assert nrmse(slightly, target) < nrmse(badly, target)


def test_constant_prediction_scores_as_the_target_mean(target: np.ndarray) -> None:
    flat = np.full(target.shape, 5.0)
    mse = float(np.mean((target - target.mean()) ** 2))
    data_range = float(target.max() - target.min())
    assert psnr(flat, target) == pytest.approx(10 * math.log10(data_range**2 / mse))
    assert nrmse(flat, target) == pytest.approx(math.sqrt(mse) / data_range)
    assert abs(ssim(flat, target)) < 0.05


def test_constant_target_is_reproduced_exactly_without_nan(target: np.ndarray) -> None:
    flat = np.full(target.shape, 2.0)
    assert psnr(target, flat) == math.inf
    assert ssim(target, flat) == 1.0
    assert nrmse(target, flat) == 0.0


def test_ssim_window_fits_thin_volumes() -> None:
    assert ssim_window((64, 64, 32)) == 7
    assert ssim_window((64, 64, 6)) == 5
    assert ssim_window((64, 64, 3)) == 3
    rng = np.random.default_rng(3)
    thin = rng.random((20, 20, 4))
    assert 0 < ssim(thin + rng.normal(0, 0.1, thin.shape), thin) < 1
    with pytest.raises(ValueError, match="at least 3 voxels"):
        ssim(thin[:, :, :2], thin[:, :, :2])


def test_mismatched_or_invalid_inputs_are_refused(target: np.ndarray) -> None:
    with pytest.raises(ValueError, match="shape"):
        psnr(target[:-1], target)
    bad = target.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ssim(bad, target)
