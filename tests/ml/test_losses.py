from __future__ import annotations

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy
from skimage.metrics import structural_similarity

from voxelstudio.ml.backend import value_and_gradient
from voxelstudio.ml.config import LOSSES, LossConfig
from voxelstudio.ml.losses import ImbalancedLoss, MaeSsimLoss, SSIMLoss, get_loss, ssim_map


def _pair(shape=(2, 12, 10, 6, 1), noise=0.2, seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(shape, dtype=np.float32)
    return y, np.clip(y + noise * rng.standard_normal(shape), 0, 1).astype(np.float32)


def test_get_loss_builds_each_named_loss() -> None:
    kinds = {name: type(get_loss(LossConfig(name=name))) for name in LOSSES}
    assert kinds == {
        "imbalanced": ImbalancedLoss,
        "mae": keras.losses.MeanAbsoluteError,
        "mse": keras.losses.MeanSquaredError,
        "ssim": SSIMLoss,
        "mae+ssim": MaeSsimLoss,
    }
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss(LossConfig(name="huber"))


def test_imbalanced_loss_on_a_hand_example() -> None:
    y = np.array([0.0, 0.05, 0.1, 0.5, 1.0, 0.0], np.float32).reshape(1, 1, 2, 3, 1)
    yhat = np.array([0.2, 0.0, 0.0, 0.25, 0.5, 0.1], np.float32).reshape(1, 1, 2, 3, 1)
    # |error| = .2 .05 .1 .25 .5 .1; targets >= 0.1 (third to fifth voxels) weigh 1000
    expected = (0.2 + 0.05 + 1000 * (0.1 + 0.25 + 0.5) + 0.1) / 6
    loss = get_loss(LossConfig(name="imbalanced"))
    assert float(loss(y, yhat)) == pytest.approx(expected, rel=1e-6)
    custom = get_loss(LossConfig(name="imbalanced", threshold=0.5, weight=2.0))
    assert float(custom(y, yhat)) == pytest.approx((0.2 + 0.05 + 0.1 + 2 * (0.25 + 0.5) + 0.1) / 6, rel=1e-6)


def test_imbalanced_loss_below_one_answers_an_uncertain_voxel_with_background() -> None:
    """adapt's fine-tuning loss (bead voxels weighted 0.25): a voxel that is bead in 70 % of the samples, background
    in the rest, costs least predicted as background; MAE answers with the median (bead), MSE with the mean."""
    y = np.array([1.0] * 7 + [0.0] * 3, np.float32).reshape(1, 1, 1, 10, 1)

    def cost(cfg: LossConfig, value: float) -> float:
        return float(get_loss(cfg)(y, np.full_like(y, value)))

    quarter = LossConfig(name="imbalanced", threshold=0.1, weight=0.25)
    assert cost(quarter, 0.0) < cost(quarter, 0.7) < cost(quarter, 1.0)
    assert cost(LossConfig(name="mae"), 0.0) > cost(LossConfig(name="mae"), 1.0)
    mse = [cost(LossConfig(name="mse"), v) for v in (0.0, 0.7, 1.0)]
    assert mse[1] < min(mse[0], mse[2])


def test_mse_and_mae_match_numpy() -> None:
    y, yhat = _pair()
    assert float(get_loss(LossConfig(name="mse"))(y, yhat)) == pytest.approx(np.mean((y - yhat) ** 2), rel=1e-5)
    assert float(get_loss(LossConfig(name="mae"))(y, yhat)) == pytest.approx(np.mean(np.abs(y - yhat)), rel=1e-5)


def test_ssim_loss_is_zero_for_identical_volumes_and_grows_with_noise() -> None:
    y, slightly = _pair(noise=0.05)
    _, very = _pair(noise=0.3)
    loss = SSIMLoss()
    assert float(loss(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < float(loss(y, slightly)) < float(loss(y, very)) <= 2.0


def test_ssim_map_matches_scikit_image_away_from_the_borders() -> None:
    _, a = _pair((1, 20, 22, 24, 1), noise=0.0)
    _, b = _pair((1, 20, 22, 24, 1), noise=0.3, seed=1)
    reference = structural_similarity(
        a[0, ..., 0],
        b[0, ..., 0],
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )[1]
    ours = to_numpy(ssim_map(a, b, size=11))[0, ..., 0]
    inner = (slice(5, -5),) * 3
    np.testing.assert_allclose(ours[inner], reference[inner], atol=1e-5)


def test_ssim_works_on_a_few_slices_and_several_channels() -> None:
    y, yhat = _pair((2, 9, 7, 2, 3), noise=0.1)
    per_sample = SSIMLoss().call(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(yhat))
    assert per_sample.shape == (2,)
    assert np.all(to_numpy(per_sample) > 0)


def test_mae_plus_ssim_is_the_weighted_sum() -> None:
    y, yhat = _pair()
    mae = np.mean(np.abs(y - yhat))
    ssim = float(SSIMLoss()(y, yhat))
    combined = get_loss(LossConfig(name="mae+ssim", mae_weight=2.0, ssim_weight=0.5))
    assert float(combined(y, yhat)) == pytest.approx(2.0 * mae + 0.5 * ssim, rel=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_are_finite_and_nonzero(name: str) -> None:
    y, yhat = _pair((1, 8, 8, 3, 1), noise=0.1)
    y[0, 2:4, 2:4, 1] = 0.0  # flat regions: zero variance must not give NaN
    yhat[0, 2:4, 2:4, 1] = 0.0
    loss = get_loss(LossConfig(name=name))
    _, grad = value_and_gradient(lambda prediction: loss(keras.ops.convert_to_tensor(y), prediction), yhat)
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


@pytest.mark.parametrize("name", LOSSES)
def test_losses_serialise(name: str) -> None:
    loss = get_loss(LossConfig(name=name, threshold=0.3, weight=7.0, mae_weight=3.0))
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    y, yhat = _pair((1, 6, 6, 3, 1))
    assert float(clone(y, yhat)) == pytest.approx(float(loss(y, yhat)), rel=1e-6)
