"""fit_denoiser_on_generated: fresh batches, best and last models, resume, a generator error stops the run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken
from voxelstudio.ml.config import DenoiserConfig, TrainConfig
from voxelstudio.ml.fit import checkpoint_paths
from voxelstudio.ml.generated_training import fit_denoiser_on_generated
from voxelstudio.ml.persistence import load_model

SHAPE = (16, 16, 8)


class Blobs:
    """Batches of (blurred noisy beads, beads) from the key alone; fails on ``fail_at`` (a dying generator)."""

    def __init__(self, batch_size: int = 2, fail_at: int | None = None) -> None:
        self.batch_size, self.fail_at = batch_size, fail_at
        self.keys: list[int] = []

    def __call__(self, key: int):
        if key == self.fail_at:
            raise RuntimeError(f"generator failed at batch {key}")
        self.keys.append(key)
        rng = np.random.default_rng(key)
        target = ndimage.gaussian_filter((rng.random((self.batch_size, *SHAPE)) < 0.01).astype(np.float32), 1.0)
        target /= max(float(target.max()), 1e-6)
        raw = ndimage.gaussian_filter(target, (0, 1.5, 1.5, 3.0)) + 0.05 * rng.normal(size=target.shape)
        return raw.astype(np.float32), target, {"made": 1}


def config(**overrides) -> TrainConfig:
    model = DenoiserConfig.for_arch("simple", filters=2, kernel=(3, 3, 3), n_layers=2)
    settings = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch_shape": SHAPE, **overrides}
    return TrainConfig(model=model, **settings)


def validation():
    x, y, _ = Blobs()(10_000)
    return [(x[..., None], y[..., None])]


def test_trains_saves_best_and_last_then_resumes_with_the_next_batches(tmp_path):
    out, blobs = tmp_path / "gen.keras", Blobs()
    outcome = fit_denoiser_on_generated(blobs, validation(), config(epochs=1), out_path=out, extra={"generator": "b"})
    assert outcome.epochs_run == 1 and outcome.stopped_reason == "epochs" and outcome.model_path == out
    assert len(outcome.history["val_loss"]) == 1 and np.isfinite(outcome.history["val_psnr"]).all()
    # fresh batches (which keys exactly depends on how the backend's loader peeks and ends epochs)
    assert len(set(blobs.keys)) >= 2 and outcome.counts["made"] >= 2 and outcome.samples_made >= 4
    loaded = load_model(out)
    assert loaded.metadata["extra"]["generator"] == "b" and loaded.model.output_shape[-1] == 1
    state = json.loads(checkpoint_paths(out)[1].read_text())
    assert state["epoch"] == 1 and state["monitor"] == "val_loss"

    later = Blobs()
    resumed = fit_denoiser_on_generated(later, validation(), config(epochs=2), out_path=out, resume=True)
    assert resumed.epochs_run == 2 and resumed.history["epoch"] == [1, 2]
    assert min(later.keys) >= 2  # the batches after the first epoch's, not the first epoch's again


def test_a_generator_error_stops_the_run_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "gen.keras"
    with pytest.raises(RuntimeError, match="generator failed at batch 7"):  # its own error, on every backend
        fit_denoiser_on_generated(Blobs(fail_at=7), validation(), config(epochs=5), out_path=out)
    last, _ = checkpoint_paths(out)  # the loader runs ahead of training: the error surfaces an epoch or so early
    assert 1 <= load_model(last).metadata["extra"]["training_state"]["epoch"] < 4 and out.exists()


def test_cancel_before_start_trains_nothing(tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        fit_denoiser_on_generated(Blobs(), validation(), config(), out_path=tmp_path / "m.keras", cancel=token)
    assert not (tmp_path / "m.keras").exists()


def test_init_starts_from_another_models_weights(tmp_path):
    first = tmp_path / "first.keras"
    fit_denoiser_on_generated(Blobs(), validation(), config(epochs=3), out_path=first)
    x, _ = validation()[0]
    trained = load_model(first).model
    # a learning rate too small to move the weights: what is saved is the starting point
    continued = fit_denoiser_on_generated(
        Blobs(), validation(), config(epochs=1, learning_rate=1e-9), out_path=tmp_path / "more.keras", init=first
    )
    scratch = fit_denoiser_on_generated(
        Blobs(), validation(), config(epochs=1, learning_rate=1e-9), out_path=tmp_path / "new.keras"
    )
    assert continued.best_val_loss < scratch.best_val_loss
    more = load_model(tmp_path / "more.keras").model
    np.testing.assert_allclose(more.predict(x, verbose=0), trained.predict(x, verbose=0), atol=1e-4)
    with pytest.raises(ValueError, match="cannot start from another model"):
        fit_denoiser_on_generated(Blobs(), validation(), config(), out_path=first, resume=True, init=first)
