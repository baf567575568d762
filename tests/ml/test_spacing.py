"""Voxel-size conditioning: the features, FiLM wiring, prediction, files and training with the voxel size as input."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.ml.blocks import FiLM3D
from voxelstudio.ml.config import DenoiserConfig, TrainConfig
from voxelstudio.ml.denoisers import build_denoiser
from voxelstudio.ml.inference import plan_prediction, predict_volume
from voxelstudio.ml.persistence import LoadedModel, load_model, save_model
from voxelstudio.ml.sim_dataset import SimulatedPatches
from voxelstudio.ml.spacing import (
    PairSpacings,
    conditioning,
    outside_range,
    spacing_features,
    spacing_range,
    takes_spacing,
    with_features,
)
from voxelstudio.ml.tiling import plan_tiles
from voxelstudio.ml.training import fit_denoiser

UNET = DenoiserConfig.for_arch("unet", filters=2, kernel=(3, 3, 3), depth=2, spacing_input=True)
FINE, COARSE = (0.1, 0.1, 0.1), (0.2, 0.2, 0.4)


def film_weights_random(model: keras.Model, seed: int = 0) -> None:
    """Give every FiLM layer non-zero weights (they start as the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, FiLM3D):
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])


def whole(model: keras.Model, x: np.ndarray, spacing) -> np.ndarray:
    batch = x[None, ..., None]
    out = model(with_features(batch, conditioning(model, spacing)), training=False)
    return keras.ops.convert_to_numpy(out)[0, ..., 0]


def test_features_are_log_pixel_and_log_aspect_ratio():
    np.testing.assert_allclose(spacing_features(FINE), [0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(spacing_features(COARSE), [math.log(2), math.log(2)], rtol=1e-6)
    # the lateral size is the geometric mean of y and x, so swapping them (a quarter turn) changes nothing
    np.testing.assert_array_equal(spacing_features((0.1, 0.4, 0.3)), spacing_features((0.4, 0.1, 0.3)))
    for bad in ((0.1, 0.1), (0.1, 0.0, 0.1), (0.1, float("nan"), 0.1)):
        with pytest.raises(ValueError, match="voxel size"):
            spacing_features(bad)


def test_range_check_names_the_axis_outside_the_trained_sizes():
    trained = spacing_range([(0.05, 0.05, 0.1), (0.2, 0.2, 0.3)])
    assert trained == {"lateral": [0.05, 0.2], "axial": [0.1, 0.3]}
    assert outside_range((0.1, 0.1, 0.2), trained) is None
    assert outside_range((0.24, 0.24, 0.36), trained) is None  # within the 25% slack
    problem = outside_range((1.0, 1.0, 0.2), trained)
    assert problem is not None and problem.startswith("lateral 1 µm") and "axial" not in problem


@pytest.mark.parametrize("arch", ["simple", "unet", "resunet"])
def test_conditioned_models_start_as_the_identity_and_then_follow_the_voxel_size(arch):
    overrides = {"filters": 2, "kernel": (3, 3, 3)}
    cfg = DenoiserConfig.for_arch(arch, **overrides, **({} if arch == "simple" else {"depth": 2}), spacing_input=True)
    model = build_denoiser(cfg)
    assert takes_spacing(model) and [tuple(i.shape) for i in model.inputs][1] == (None, 2)
    x = np.random.default_rng(0).random((16, 16, 8)).astype(np.float32)
    np.testing.assert_array_equal(whole(model, x, FINE), whole(model, x, COARSE))  # zero FiLM: voxel size unused
    film_weights_random(model)
    assert np.abs(whole(model, x, FINE) - whole(model, x, COARSE)).max() > 1e-3
    assert not takes_spacing(build_denoiser(DenoiserConfig.for_arch(arch, **overrides)))


def test_prediction_needs_the_voxel_size_and_tiles_equal_the_whole_volume():
    model = build_denoiser(UNET)
    film_weights_random(model)
    loaded = LoadedModel(model, TrainConfig(model=UNET), PercentileNormalizer(out_low=0.0, out_high=1.0), {}, "0" * 64)
    x = np.random.default_rng(1).random((70, 61, 10)).astype(np.float32)
    with pytest.raises(ValueError, match="voxel size"):
        predict_volume(loaded, x)
    plan = plan_prediction(UNET, x.shape, tile_shape=(34, 34, 10))
    assert len(plan_tiles(plan.padded_shape, plan.tile_shape, plan.overlap, multiple=plan.multiple)) >= 4
    normalizer = loaded.normalizer
    for spacing in (FINE, COARSE):
        expected = normalizer.after(whole(model, normalizer.before(x), spacing))
        tiled, _, _ = predict_volume(loaded, x, tile_shape=(34, 34, 10), spacing=spacing)
        np.testing.assert_allclose(tiled, expected, atol=1e-4)
        mean, spread, _ = predict_volume(loaded, x, tta=True, spacing=spacing)
        assert mean.shape == x.shape and spread is not None
    fine = predict_volume(loaded, x, spacing=FINE)[0]
    assert np.abs(fine - predict_volume(loaded, x, spacing=COARSE)[0]).max() > 1e-3


def test_a_conditioned_model_file_loads_and_predicts_the_same(tmp_path):
    model = build_denoiser(UNET)
    film_weights_random(model)
    path = save_model(
        model, tmp_path / "m.keras", train_config=TrainConfig(model=UNET), normalizer=PercentileNormalizer()
    )
    again = load_model(path)
    assert again.train_config.model.spacing_input and takes_spacing(again.model)
    x = np.random.default_rng(2).random((16, 16, 8)).astype(np.float32)
    np.testing.assert_allclose(whole(again.model, x, COARSE), whole(model, x, COARSE), atol=1e-6)


def _pairs(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        target = np.zeros((16, 16, 8), np.float32)
        target[tuple(rng.integers(2, 14, 3) % (16, 16, 8))] = 1.0
        pairs.append((target + rng.normal(0, 0.1, target.shape).astype(np.float32), target))
    return pairs


def test_pair_training_feeds_each_pairs_voxel_size_and_records_their_range(tmp_path):
    cfg = TrainConfig(model=UNET, epochs=2, steps_per_epoch=2, batch_size=2, patch_shape=(16, 16, 8))
    train, val = _pairs(2, 0), _pairs(1, 1)
    with pytest.raises(ValueError, match="voxel size"):
        fit_denoiser(train, val, cfg, out_path=tmp_path / "none.keras")
    spacings = PairSpacings([FINE, COARSE], [(0.15, 0.15, 0.2)])
    outcome = fit_denoiser(train, val, cfg, out_path=tmp_path / "m.keras", spacings=spacings)
    assert outcome.epochs_run == 2 and math.isfinite(outcome.best_val_loss)
    loaded = load_model(outcome.model_path)
    assert loaded.metadata["extra"]["spacing_range"] == {"lateral": [0.1, 0.2], "axial": [0.1, 0.4]}


def test_pair_batches_carry_the_features_of_the_pair_each_patch_came_from():
    from voxelstudio.ml.patches import PatchSampler
    from voxelstudio.ml.training import PatchDataset

    fine, coarse = _pairs(1, 0)[0], _pairs(1, 1)[0]
    coarse = (coarse[0] + 100.0, coarse[1])  # tells the volumes apart
    sampler = PatchSampler([fine, coarse], (8, 8, 4), augment=False)
    (x, features), _ = PatchDataset(sampler, 8, 1, seed=(0, 0), spacings=[FINE, COARSE])[0]
    assert x.shape == (8, 8, 8, 4, 1) and features.shape == (8, 2)
    from_coarse = x.reshape(8, -1).min(axis=1) > 50
    assert 0 < from_coarse.sum() < 8
    np.testing.assert_array_equal(features[from_coarse], np.tile(spacing_features(COARSE), (from_coarse.sum(), 1)))
    np.testing.assert_array_equal(features[~from_coarse], np.zeros((8 - from_coarse.sum(), 2), np.float32))


def _batch_with_spacing(key: int):
    x = np.full((2, 8, 8, 4), float(key), np.float32)
    spacing = np.array([[0.1, 0.1, 0.1], [0.2, 0.2, 0.4]], np.float32)
    return x, x, {"calls": 1}, spacing


def _batch_without_spacing(key: int):
    x = np.zeros((2, 8, 8, 4), np.float32)
    return x, x, {"calls": 1}


def test_generated_batches_give_the_features_of_each_patchs_voxel_size():
    (x, features), y = SimulatedPatches(_batch_with_spacing, spacing_input=True)[3]
    assert x.shape == y.shape == (2, 8, 8, 4, 1) and x.max() == 3.0
    np.testing.assert_allclose(features, [spacing_features(FINE), spacing_features(COARSE)], atol=1e-6)
    plain_x, _ = SimulatedPatches(_batch_with_spacing)[3]
    assert isinstance(plain_x, np.ndarray)  # an unconditioned model gets the volumes only
    with pytest.raises(ValueError, match="no voxel sizes"):
        SimulatedPatches(_batch_without_spacing, spacing_input=True)[0]


def test_generated_training_of_a_conditioned_model_runs(tmp_path):
    from voxelstudio.ml.generated_training import fit_denoiser_on_generated

    cfg = TrainConfig(model=UNET, epochs=2, steps_per_epoch=2, batch_size=2, patch_shape=(8, 8, 4))
    validation = [SimulatedPatches(_batch_with_spacing, spacing_input=True)[100]]
    outcome = fit_denoiser_on_generated(_batch_with_spacing, validation, cfg, out_path=tmp_path / "g.keras")
    assert outcome.epochs_run == 2 and outcome.model_path is not None and math.isfinite(outcome.best_val_loss)
    assert takes_spacing(load_model(outcome.model_path).model)


def test_a_conditioned_and_a_plain_model_cannot_share_weights():
    from dataclasses import replace

    from voxelstudio.ml.bundled import architecture_mismatch, describe_architecture

    assert architecture_mismatch(replace(UNET, spacing_input=False), UNET) == "spacing_input False vs True"
    assert describe_architecture(UNET) == "unet, 2 filters, kernel 3x3x3, depth 2, voxel-size input"
