"""fit_denoiser: every architecture trains and saves; cancel, time budget, early stopping, resume, learning."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from model_files import with_metadata
from scipy import ndimage

from voxelstudio.core.errors import Cancelled, ModelError
from voxelstudio.core.progress import CancelToken
from voxelstudio.ml.config import DenoiserConfig, LossConfig, TrainConfig
from voxelstudio.ml.denoisers import build_denoiser
from voxelstudio.ml.fit import TrainingMemoryError, checkpoint_paths
from voxelstudio.ml.inference import predict_volume
from voxelstudio.ml.persistence import load_model
from voxelstudio.ml.training import fit_denoiser


def blob_pair(seed: int, shape=(24, 24, 16), density=5e-3, noise=0.1):
    """Sparse Gaussian beads (target) and a blurred, noisy version of them (raw)."""
    rng = np.random.default_rng(seed)
    target = ndimage.gaussian_filter((rng.random(shape) < density).astype(np.float32), 1.0)
    target /= max(float(target.max()), 1e-6)
    raw = ndimage.gaussian_filter(target, (1.5, 1.5, 3.0)) + noise * rng.normal(size=shape)
    return raw.astype(np.float32), target.astype(np.float32)


def tiny_config(arch="simple", **overrides) -> TrainConfig:
    model = DenoiserConfig.for_arch(arch, filters=2, kernel=(3, 3, 3), n_layers=2, depth=2)
    settings = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch_shape": (16, 16, 8), **overrides}
    return TrainConfig(model=model, **settings)


class Recorder:
    def __init__(self, cancel_after_steps=None):
        self.progress = []
        self.cancel = CancelToken()
        self.cancel_after_steps = cancel_after_steps

    def __call__(self, progress):
        self.progress.append(progress)
        if self.cancel_after_steps is not None and len(self.batches) >= self.cancel_after_steps:
            self.cancel.cancel()

    @property
    def batches(self):
        return [p for p in self.progress if p.message == "training"]


@pytest.fixture(scope="module")
def pairs():
    return [blob_pair(0), blob_pair(1)], [blob_pair(2)]


@pytest.mark.parametrize("arch", ["simple", "unet", "resunet"])
def test_each_architecture_trains_and_saves(arch, pairs, tmp_path):
    train, val = pairs
    out = tmp_path / f"{arch}.keras"
    recorder = Recorder()
    outcome = fit_denoiser(train, val, tiny_config(arch), out_path=out, report=recorder)
    assert outcome.model_path == out and outcome.epochs_run == 2 and outcome.stopped_reason == "epochs"
    assert outcome.history["epoch"] == [1, 2]
    assert len(outcome.history["val_loss"]) == 2 and np.isfinite(outcome.history["val_psnr"]).all()
    assert outcome.best_val_loss == min(outcome.history["val_loss"])
    loaded = load_model(out)
    assert loaded.train_config == tiny_config(arch)
    assert loaded.normalizer.out_high == pytest.approx(max(t.max() for _, t in train))
    assert all(path.exists() for path in checkpoint_paths(out))
    assert [p.done for p in recorder.batches] == [1, 2, 3, 4]
    last = recorder.progress[-1]
    assert last.total == 4 and last.values["epoch"] == 2 and last.values["val_loss"] == outcome.history["val_loss"][-1]
    assert set(last.values) == {"epoch", "epochs", "step", "steps", "loss", "val_loss", "val_psnr", "eta_s",
                                "epoch_end", "validated"}  # fmt: skip
    assert last.values["epoch_end"] is True and last.values["validated"] is True
    assert not any(p.values["epoch_end"] for p in recorder.batches)


def test_cancel_stops_within_one_batch_and_keeps_best(pairs, tmp_path):
    train, val = pairs
    out = tmp_path / "m.keras"
    recorder = Recorder(cancel_after_steps=6)
    cfg = tiny_config(epochs=3, steps_per_epoch=4)
    outcome = fit_denoiser(train, val, cfg, out_path=out, report=recorder, cancel=recorder.cancel)
    assert len(recorder.batches) == 6  # 4 of epoch 1, 2 of epoch 2, then stop
    assert outcome.stopped_reason == "cancelled" and outcome.epochs_run == 1
    assert load_model(out).metadata["extra"]["best_epoch"] == 1
    assert outcome.history["epoch"] == [1]


def test_cancel_during_first_epoch_still_leaves_a_model(pairs, tmp_path):
    train, val = pairs
    recorder = Recorder(cancel_after_steps=1)
    cfg = tiny_config(epochs=3, steps_per_epoch=4)
    outcome = fit_denoiser(train, val, cfg, out_path=tmp_path / "m.keras", report=recorder, cancel=recorder.cancel)
    assert len(recorder.batches) == 1 and outcome.stopped_reason == "cancelled"
    assert outcome.model_path is not None and outcome.model_path.exists()


def test_cancel_before_start_trains_nothing(pairs, tmp_path):
    train, val = pairs
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        fit_denoiser(train, val, tiny_config(), out_path=tmp_path / "m.keras", cancel=token)
    assert not (tmp_path / "m.keras").exists()


def test_resume_continues_the_epoch_count(pairs, tmp_path):
    train, val = pairs
    out = tmp_path / "m.keras"
    first = fit_denoiser(train, val, tiny_config(epochs=2), out_path=out)
    assert first.epochs_run == 2
    recorder = Recorder()
    resumed = fit_denoiser(train, val, tiny_config(epochs=4), out_path=out, resume=True, report=recorder)
    assert resumed.epochs_run == 4 and resumed.history["epoch"] == [1, 2, 3, 4]
    assert resumed.history["val_loss"][:2] == first.history["val_loss"]
    assert recorder.batches[0].values["epoch"] == 3 and recorder.batches[0].done == 5
    state = json.loads(checkpoint_paths(out)[1].read_text())
    assert state["epoch"] == 4 and len(state["history"]["loss"]) == 4
    again = fit_denoiser(train, val, tiny_config(epochs=4), out_path=out, resume=True)
    assert again.epochs_run == 4 and again.stopped_reason == "epochs"  # nothing left to do


def test_resume_keeps_a_best_model_newer_than_the_last_checkpoint(pairs, tmp_path):
    """A crash can leave the best model (saved at every improvement) ahead of the throttled last checkpoint."""
    train, val = pairs
    out = tmp_path / "m.keras"
    fit_denoiser(train, val, tiny_config(epochs=2), out_path=out)
    extra = load_model(out).metadata["extra"]
    ahead = {**extra, "best_epoch": 7, "best_val_loss": 1e-9}  # as if epoch 7 had been the best before a crash
    with_metadata(out, tmp_path / "ahead.keras", extra=ahead).replace(out)
    resumed = fit_denoiser(train, val, tiny_config(epochs=4), out_path=out, resume=True)
    assert resumed.best_val_loss == 1e-9  # no resumed epoch beat it ...
    assert load_model(out).metadata["extra"]["best_epoch"] == 7  # ... so none replaced the best model
    other = tmp_path / "other" / "m.keras"
    fit_denoiser(train, val, tiny_config(epochs=2), out_path=other)
    extra = load_model(other).metadata["extra"]
    stale = {**extra, "best_val_loss": 1e-9}  # not newer than the checkpoint's best epoch: the checkpoint's stands
    with_metadata(other, tmp_path / "stale.keras", extra=stale).replace(other)
    again = fit_denoiser(train, val, tiny_config(epochs=4), out_path=other, resume=True)
    assert again.best_val_loss == pytest.approx(min(again.history["val_loss"]))


def test_resume_without_the_validation_data_chooses_the_best_model_afresh(pairs, tmp_path):
    """The checkpoint's best is a validation loss; a resumed run without validation data monitors the training
    loss, which must not be compared with it (the best model was then never, or wrongly, replaced)."""
    train, val = pairs
    out = tmp_path / "m.keras"
    fit_denoiser(train, val, tiny_config(epochs=2), out_path=out)
    with pytest.warns(UserWarning, match=r"kept the best val_loss, this run has only loss"):
        resumed = fit_denoiser(train, [], tiny_config(epochs=4), out_path=out, resume=True)
    assert resumed.epochs_run == 4
    best = load_model(out).metadata["extra"]
    assert best["best_epoch"] in (3, 4) and best["best_loss"] == pytest.approx(min(resumed.history["loss"][2:]))


def test_resume_needs_a_matching_checkpoint(pairs, tmp_path):
    train, val = pairs
    out = tmp_path / "m.keras"
    with pytest.raises(ModelError, match="no checkpoint"):
        fit_denoiser(train, val, tiny_config(), out_path=out, resume=True)
    fit_denoiser(train, val, tiny_config(epochs=1), out_path=out)
    with pytest.raises(ModelError, match="different architecture"):
        fit_denoiser(train, val, tiny_config("unet"), out_path=out, resume=True)


def test_time_budget_stops_after_a_batch(pairs, tmp_path):
    train, val = pairs
    recorder = Recorder()
    cfg = tiny_config(epochs=50, steps_per_epoch=4, minutes=1e-6)
    outcome = fit_denoiser(train, val, cfg, out_path=tmp_path / "m.keras", report=recorder)
    assert outcome.stopped_reason == "time"
    assert len(recorder.batches) == 1 and outcome.epochs_run == 1  # the partial epoch is validated and saved
    assert outcome.model_path is not None


def test_early_stopping_and_learning_rate_schedule(pairs, tmp_path):
    train, val = pairs
    # a learning rate far below float32 resolution leaves the weights, hence the validation loss, unchanged
    cfg = tiny_config(epochs=10, learning_rate=1e-12, lr_patience=1, early_stopping_patience=2)
    outcome = fit_denoiser(train, val, cfg, out_path=tmp_path / "m.keras")
    assert outcome.stopped_reason == "early_stopping" and outcome.epochs_run == 3
    rates = outcome.history["learning_rate"]
    assert rates[1] == pytest.approx(rates[0] / 2) and rates[2] == pytest.approx(rates[0] / 4)


def test_preview_every_n_epochs_in_target_units(pairs, tmp_path):
    train, val = pairs
    previews = []
    fit_denoiser(
        train, val, tiny_config(epochs=3), out_path=tmp_path / "m.keras",
        on_preview=lambda epoch, array: previews.append((epoch, array)), preview_every=2,
    )  # fmt: skip
    assert [epoch for epoch, _ in previews] == [2]
    assert previews[0][1].shape == val[0][0].shape and previews[0][1].dtype == np.float32


def test_preview_of_another_volume_when_given(pairs, tmp_path):
    """Adapting to a scan previews what the model makes of that scan, not of a simulated validation pair."""
    train, val = pairs
    scan = blob_pair(9, shape=(20, 28, 8))[0] * 1000 + 100  # another shape and the camera's units
    previews = []
    fit_denoiser(
        train, val, tiny_config(epochs=1), out_path=tmp_path / "m.keras", preview_input=scan,
        on_preview=lambda epoch, array: previews.append(array),
    )  # fmt: skip
    assert len(previews) == 1 and previews[0].shape == scan.shape and np.isfinite(previews[0]).all()


def test_without_validation_pairs_training_loss_decides(pairs, tmp_path):
    train, _ = pairs
    outcome = fit_denoiser(train, [], tiny_config(), out_path=tmp_path / "m.keras")
    assert "val_loss" not in outcome.history and outcome.best_val_loss == min(outcome.history["loss"])


def test_constant_targets_are_rejected(tmp_path):
    raw = np.random.default_rng(0).random((16, 16, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="constant"):
        fit_denoiser([(raw, np.zeros_like(raw))], [], tiny_config(), out_path=tmp_path / "m.keras")


def affine_fit_psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """PSNR after the best least-squares affine map of ``prediction`` onto ``target`` (fair to any units)."""
    design = np.stack([prediction.ravel(), np.ones(prediction.size)], axis=1)
    coef = np.linalg.lstsq(design, target.ravel(), rcond=None)[0]
    return float(10 * np.log10(1.0 / np.mean((design @ coef - target.ravel()) ** 2)))


def test_tiny_model_beats_its_input_on_held_out_data(tmp_path):
    """Learns on every backend (each draws other initial weights from the seed: at 3e-3 two of the three backends'
    draws collapsed to a constant output under MSE)."""
    train = [blob_pair(i, shape=(32, 32, 16)) for i in range(4)]
    val = [blob_pair(10, shape=(32, 32, 16))]
    model = DenoiserConfig.for_arch("simple", filters=4, kernel=(3, 3, 3), n_layers=3)
    cfg = TrainConfig(
        model=model, loss=LossConfig(name="mse"), epochs=15, steps_per_epoch=10, batch_size=4,
        patch_shape=(16, 16, 16), learning_rate=1e-3,
    )  # fmt: skip
    outcome = fit_denoiser(train, val, cfg, out_path=tmp_path / "m.keras")
    raw, target = blob_pair(99, shape=(32, 32, 16))
    prediction, _, _ = predict_volume(load_model(outcome.model_path), raw)
    plain_psnr = float(10 * np.log10(1.0 / np.mean((prediction - target) ** 2)))
    assert plain_psnr > affine_fit_psnr(raw, target) + 0.5


def test_init_starts_from_the_given_models_weights(pairs, tmp_path):
    train, val = pairs
    first = tmp_path / "first.keras"
    fit_denoiser(train, val, tiny_config("unet", epochs=1), out_path=first)
    start = load_model(first).model.get_weights()
    tuned = tmp_path / "tuned.keras"
    fit_denoiser(train, val, tiny_config("unet", epochs=1, learning_rate=1e-12), out_path=tuned, init=first)
    for a, b in zip(start, load_model(tuned).model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    keras.utils.set_random_seed(0)  # what training without init would start from
    fresh = build_denoiser(tiny_config("unet").model).get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(start, fresh, strict=True))


def test_init_needs_the_same_architecture(pairs, tmp_path):
    train, val = pairs
    first = tmp_path / "first.keras"
    fit_denoiser(train, val, tiny_config("simple", epochs=1), out_path=first)
    with pytest.raises(ModelError, match="another architecture"):
        fit_denoiser(train, val, tiny_config("unet", epochs=1), out_path=tmp_path / "b.keras", init=first)
    with pytest.raises(ValueError, match="cannot start from another model"):
        fit_denoiser(train, val, tiny_config("simple"), out_path=first, init=first, resume=True)


def _real_out_of_memory_error() -> Exception:
    """The active backend's own out-of-memory exception."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")
    if backend == "torch":
        import torch

        return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[16,128,128,32]")


class _OutOfMemoryInSecondEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise _real_out_of_memory_error()


def test_out_of_memory_names_the_sizes_and_keeps_the_checkpoint(pairs, tmp_path, monkeypatch):
    train, val = pairs
    original = keras.callbacks.CallbackList.__init__

    def with_oom(self, callbacks=None, **kwargs):
        original(self, [*(callbacks or []), _OutOfMemoryInSecondEpoch()], **kwargs)

    monkeypatch.setattr(keras.callbacks.CallbackList, "__init__", with_oom)
    out = tmp_path / "m.keras"
    cfg = tiny_config(batch_size=2, patch_shape=(16, 16, 8), epochs=3)
    with pytest.raises(TrainingMemoryError) as error:
        fit_denoiser(train, val, cfg, out_path=out)
    message = str(error.value)
    last, _ = checkpoint_paths(out)
    assert "batches of 2 patches of 16x16x8 voxels" in message and "--batch-size 1" in message
    assert f"the last checkpoint {last} is kept" in message and "\n" not in message
    assert load_model(last).metadata["extra"]["training_state"]["epoch"] == 1
