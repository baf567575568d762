"""predict_volume: tiled equals untiled with real Keras models, exact TTA inversion, OOM retry."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.ml.backend import is_out_of_memory
from voxelstudio.ml.config import DenoiserConfig, TrainConfig
from voxelstudio.ml.denoisers import build_denoiser
from voxelstudio.ml.inference import (
    TTA_TRANSFORMS,
    forward_transform,
    inverse_transform,
    plan_prediction,
    predict_unit,
    predict_volume,
    tile_margin,
)
from voxelstudio.ml.persistence import LoadedModel
from voxelstudio.ml.tiling import plan_tiles


def loaded(model, cfg: DenoiserConfig, normalizer=None) -> LoadedModel:
    normalizer = normalizer or PercentileNormalizer(out_low=0.0, out_high=1.0)
    return LoadedModel(model, TrainConfig(model=cfg), normalizer, {}, "0" * 64)


def whole(model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x[None, ..., None], training=False))[0, ..., 0]


CONFIGS = {
    "simple-odd": DenoiserConfig.for_arch("simple", filters=2, kernel=(3, 3, 3), n_layers=2),
    "simple-even": DenoiserConfig.for_arch("simple", filters=2, kernel=(4, 4, 2), n_layers=3),
    "unet": DenoiserConfig.for_arch("unet", filters=2, kernel=(3, 3, 3), depth=2),
    "resunet": DenoiserConfig.for_arch("resunet", filters=2, kernel=(3, 3, 3), depth=2, norm="batch"),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_tiled_equals_untiled_for_real_models(name):
    cfg = CONFIGS[name]
    keras.utils.set_random_seed(0)
    model = build_denoiser(cfg)
    x = np.random.default_rng(1).random((70, 61, 10)).astype(np.float32)
    expected = whole(model, x)
    plan = plan_prediction(cfg, x.shape, tile_shape=(34, 34, 10))
    assert len(plan_tiles(plan.padded_shape, plan.tile_shape, plan.overlap, multiple=plan.multiple)) >= 4
    tiled, _, retries = predict_unit(model, cfg, x, plan=plan)
    assert retries == 0 and tiled.shape == x.shape
    assert expected.std() > 1e-4  # the model does something to compare
    np.testing.assert_allclose(tiled, expected, rtol=1e-5, atol=1e-6)


def test_margin_smaller_than_reach_shows_seams():
    cfg = CONFIGS["simple-odd"]
    keras.utils.set_random_seed(0)
    model = build_denoiser(cfg)
    x = np.random.default_rng(1).random((48, 48, 8)).astype(np.float32)
    plan = plan_prediction(cfg, x.shape, tile_shape=(20, 20, 8))
    blind = type(plan)(**{**plan.__dict__, "margin": (0, 0, 0), "overlap": (2, 2, 2)})
    tiled, _, _ = predict_unit(model, cfg, x, plan=blind)
    assert np.abs(tiled - whole(model, x)).max() > 1e-4


def test_margin_matches_keras_same_padding_split():
    cfg = DenoiserConfig.for_arch("simple")  # 4 layers of 16x16x8: 'same' puts 8 of 15 (4 of 7) after the centre
    assert tile_margin(cfg) == (32, 32, 16)


@pytest.mark.parametrize(("turns", "flip"), TTA_TRANSFORMS)
def test_transforms_invert_exactly(turns, flip):
    x = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(inverse_transform(forward_transform(x, turns, flip), turns, flip), x)


def identity_model() -> keras.Model:
    inputs = keras.Input((None, None, None, 1))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def test_tta_on_identity_model_returns_input_with_zero_uncertainty():
    cfg = DenoiserConfig(arch="simple", kernel=(1, 1, 1), n_layers=1)
    normalizer = PercentileNormalizer(out_low=0.0, out_high=10.0)
    x = np.random.default_rng(2).random((13, 9, 6)).astype(np.float32) * 50 + 100
    progress = []
    prediction, uncertainty, info = predict_volume(
        loaded(identity_model(), cfg, normalizer), x, tta=True, report=progress.append
    )
    np.testing.assert_allclose(prediction, normalizer.after(normalizer.before(x)), rtol=1e-5, atol=1e-5)
    assert uncertainty is not None and uncertainty.shape == x.shape and uncertainty.max() < 1e-5
    assert info["transforms"] == 8 and info["tta"] is True
    assert progress[-1].done == progress[-1].total == 8 and len(progress) == 8 * info["tiles"]


def test_tta_uncertainty_is_positive_for_a_direction_sensitive_model():
    inputs = keras.Input((None, None, None, 1))
    shifted = keras.layers.Conv3D(1, (3, 1, 1), padding="same", use_bias=False, kernel_initializer="ones")(inputs)
    model = keras.Model(inputs, keras.layers.Multiply()([shifted, inputs]))
    cfg = DenoiserConfig(arch="simple", kernel=(3, 1, 1), n_layers=1)
    x = np.random.default_rng(3).random((12, 12, 4)).astype(np.float32)
    _, uncertainty, _ = predict_volume(loaded(model, cfg), x, tta=True)
    _, none, _ = predict_volume(loaded(model, cfg), x, tta=False)
    assert uncertainty.mean() > 1e-3 and none is None


def _tensorflow_oom() -> Exception:
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed")
    return tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")


def _jax_oom() -> Exception:
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    return jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4294967296 bytes.")


def _torch_oom() -> Exception:
    return sys.modules["torch"].OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")


def _torch_or_a_stand_in(monkeypatch) -> None:
    """PyTorch when installed, else a module with its out-of-memory class (what is_out_of_memory looks up), so the
    branch runs in CI too."""
    try:
        import torch  # noqa: F401
    except ImportError:
        error = type("OutOfMemoryError", (RuntimeError,), {})
        monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(OutOfMemoryError=error))


OUT_OF_MEMORY = {"tensorflow": _tensorflow_oom, "jax": _jax_oom, "torch": _torch_oom, "host": MemoryError}
"""Each backend's real out-of-memory exception (whichever backend Keras runs on: all are recognised)."""


class FlakyModel:
    """Identity that runs out of memory on tiles with more than ``limit`` voxels."""

    def __init__(self, limit: int, error: Exception | None = None) -> None:
        self.limit = limit
        self.error = error if error is not None else MemoryError("out of memory")
        self.shapes = []

    def __call__(self, batch, training=False):
        self.shapes.append(batch.shape[1:4])
        if np.prod(batch.shape) > self.limit:
            raise self.error
        return batch

    def predict_on_batch(self, batch):
        return self(batch)


@pytest.mark.parametrize("kind", sorted(OUT_OF_MEMORY))
def test_out_of_memory_retries_with_smaller_tiles(kind: str, monkeypatch):
    if kind == "torch":
        _torch_or_a_stand_in(monkeypatch)
        assert not is_out_of_memory(RuntimeError("CUDA error: an illegal memory access"))
    cfg = DenoiserConfig(arch="simple", kernel=(3, 3, 3), n_layers=1)
    model = FlakyModel(limit=40 * 40 * 8, error=OUT_OF_MEMORY[kind]())
    x = np.random.default_rng(4).random((64, 64, 8)).astype(np.float32)
    prediction, _, info = predict_volume(loaded(model, cfg), x, tile_shape=(64, 64, 8))
    np.testing.assert_allclose(prediction, PercentileNormalizer().before(x), rtol=1e-5, atol=1e-5)
    assert info["oom_retries"] >= 1 and info["tile_shape"][0] * info["tile_shape"][1] * 8 <= 40 * 40 * 8
    assert (64, 64, 8) in model.shapes


def test_out_of_memory_with_the_smallest_tile_is_a_clear_error():
    cfg = DenoiserConfig(arch="simple", kernel=(3, 3, 3), n_layers=1)
    with pytest.raises(MemoryError, match="out of memory even with tiles"):
        predict_volume(loaded(FlakyModel(limit=1), cfg), np.ones((32, 32, 8), dtype=np.float32))


def test_plan_prediction_pads_and_rounds_tiles():
    cfg = CONFIGS["unet"]
    plan = plan_prediction(cfg, (50, 41, 9), tile_shape=(33, 1, 9))
    assert plan.padded_shape == (50 + 0, 42, 10)
    assert all(t % m == 0 for t, m in zip(plan.tile_shape, plan.multiple, strict=True))
    assert plan.tile_shape[1] >= plan.overlap[1] or plan.tile_shape[1] == plan.padded_shape[1]
    tiny = plan_prediction(cfg, (256, 256, 32), budget_bytes=1)
    assert tiny.tile_shape[0] < 256 and tiny.tile_bytes > 1  # smallest possible tile when nothing fits
    roomy = plan_prediction(cfg, (64, 64, 16), budget_bytes=1 << 40)
    assert roomy.tile_shape == (64, 64, 16)


def test_rejects_non_3d_input():
    cfg = DenoiserConfig(arch="simple", kernel=(1, 1, 1), n_layers=1)
    with pytest.raises(ValueError, match="3-D"):
        predict_volume(loaded(identity_model(), cfg), np.zeros((4, 4)))


def test_per_tile_normalisation_equals_normalising_the_whole_volume_first():
    cfg = CONFIGS["unet"]
    keras.utils.set_random_seed(0)
    model = build_denoiser(cfg)
    raw = 100 + 50 * np.random.default_rng(2).random((70, 61, 10)).astype(np.float32)
    normalizer = PercentileNormalizer(out_low=-3.0, out_high=7.0)
    expected = normalizer.after(whole(model, normalizer.before(raw)))
    prediction, uncertainty, info = predict_volume(loaded(model, cfg, normalizer), raw, tile_shape=(34, 34, 10))
    assert uncertainty is None and info["tiles"] >= 4
    np.testing.assert_allclose(prediction, expected, rtol=1e-5, atol=1e-5)


def test_tensorflow_retracing_notice_is_filtered_and_other_warnings_pass():
    import logging

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    filters = logging.getLogger("tensorflow").filters
    retracing = record("5 out of the last 340 calls to <function f> triggered tf.function retracing. Tracing is ...")
    assert not all(f.filter(retracing) for f in filters)
    assert all(f.filter(record("some other warning")) for f in filters)


def test_other_errors_are_not_taken_for_out_of_memory():
    cfg = DenoiserConfig(arch="simple", kernel=(3, 3, 3), n_layers=1)
    model = FlakyModel(limit=1, error=RuntimeError("cuDNN launch failure"))
    with pytest.raises(RuntimeError, match="cuDNN"):
        predict_volume(loaded(model, cfg), np.ones((32, 32, 8), dtype=np.float32), tile_shape=(32, 32, 8))
    assert len(model.shapes) == 1


def test_tta_with_a_kernel_longer_along_y_than_x_tiles_the_turned_volume():
    """A quarter turn swaps the tile's y and x but not the network's overlap: the turned tile must still leave a
    stride (a (9, 3, 3) kernel once failed with "tile size 20 leaves no stride with overlap 24")."""
    cfg = DenoiserConfig.for_arch("simple", filters=2, kernel=(9, 3, 3), n_layers=2)
    keras.utils.set_random_seed(0)
    model = loaded(build_denoiser(cfg), cfg)
    x = np.random.default_rng(0).random((48, 48, 8)).astype(np.float32)
    tiled, spread, info = predict_volume(model, x, tta=True, tile_shape=(40, 20, 8))
    whole_mean, whole_spread, _ = predict_volume(model, x, tta=True)
    assert info["tiles"] > 1
    np.testing.assert_allclose(tiled, whole_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(spread, whole_spread, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("tta", [False, True])
def test_a_model_with_an_input_shift_sees_the_scan_moved(tta):
    from dataclasses import replace

    from voxelstudio.core.subvoxel import translate

    cfg = CONFIGS["unet"]
    keras.utils.set_random_seed(0)
    model = build_denoiser(cfg)
    plain = loaded(model, cfg, PercentileNormalizer(out_low=0.0, out_high=2.0))
    shifts = {False: (0.0, 0.3, -0.62), True: (0.0, 0.0, -1.3)}  # the z-flipped views of TTA have their own
    shifted = replace(plain, input_shift=shifts[False], flipped_input_shift=shifts[True])
    x = np.random.default_rng(4).random((24, 20, 12)).astype(np.float32) * 100
    normalizer = plain.normalizer
    views = {flip: normalizer.before(translate(x, shift), normalizer.input_range(x)) for flip, shift in shifts.items()}
    transforms = TTA_TRANSFORMS if tta else ((0, False),)
    expected = np.mean(
        [inverse_transform(whole(model, forward_transform(views[f], t, f)), t, f) for t, f in transforms], axis=0
    )
    out, _, _ = predict_volume(shifted, x, tta=tta)
    np.testing.assert_allclose(out, normalizer.after(expected), rtol=1e-4, atol=1e-5)
    assert np.abs(out - predict_volume(plain, x, tta=tta)[0]).max() > 1e-3
