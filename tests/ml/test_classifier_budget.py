"""Time-budgeted classifier training, learning-rate schedules, device presets and batched rotation voting."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from voxelstudio.core.progress import CancelToken
from voxelstudio.ml.classifier_config import DEFAULT_EPOCHS, ClassifierConfig, ClassifierTrainConfig
from voxelstudio.ml.classifier_inference import choose_rotations, predict_probabilities
from voxelstudio.ml.classifier_presets import preset_settings, resolve_preset
from voxelstudio.ml.classifier_training import fit_classifier, run_fractions, scheduled_learning_rate
from voxelstudio.ml.classifiers import build_classifier, load_classifier
from voxelstudio.ml.voxel_augment import rotate_vertical, vertical_rotations
from voxelstudio.sim.shapes import generate_shapes

CLASSES = ("sphere", "cube", "torus")


@pytest.fixture(scope="module")
def split() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    data = list(generate_shapes(6, seed=0, size=16, classes=CLASSES))
    grids, labels = np.stack([g for _, _, g in data]), np.array([CLASSES.index(c) for c, _, _ in data])
    held_out = np.arange(len(labels)) % 6 == 5  # one grid per class validates
    return (grids[~held_out], labels[~held_out]), (grids[held_out], labels[held_out])


def tiny(**overrides) -> ClassifierTrainConfig:
    model = {"n_classes": 3, "input_shape": (16, 16, 16), "width": 0.125}
    settings = {"batch_size": 16, "learning_rate": 3e-3, "augment": False, **overrides}
    return ClassifierTrainConfig.for_arch("voxnet", model_overrides=model, **settings)


def test_epoch_cap_follows_the_budget_semantics() -> None:
    assert tiny().max_epochs == DEFAULT_EPOCHS == 30 and not tiny().budget_driven
    assert tiny(epochs=7).max_epochs == 7 and tiny(epochs=7, minutes=1.0).max_epochs == 7
    assert tiny(minutes=1.0).budget_driven and tiny(minutes=1.0).max_epochs > 10_000
    assert tiny(minutes=1.0, epochs=3).budget_driven is False


def test_minutes_alone_trains_past_the_old_30_epoch_default(split, tmp_path) -> None:
    train, val = split
    cancel, seen = CancelToken(), []

    def report(progress) -> None:
        seen.append(progress)
        if progress.values.get("validated") and progress.values["epoch"] >= 33:
            cancel.cancel()  # stop the test without waiting for the hour

    cfg = tiny(minutes=60.0, patience=1000)
    outcome = fit_classifier(train, val, cfg, CLASSES, out_path=tmp_path / "m.keras", report=report, cancel=cancel)
    assert outcome.epochs_run > DEFAULT_EPOCHS and outcome.stopped_reason == "cancelled"
    training = [p for p in seen if p.message == "training"]
    # the progress total is the budget in seconds, and epochs are open-ended
    assert {p.total for p in training} == {3600} and all(p.values["epochs"] is None for p in training)
    assert len(outcome.history["val_loss"]) == outcome.epochs_run


def test_budget_runs_stop_early_on_no_improvement_and_keep_the_best(split, tmp_path) -> None:
    train, val = split
    cfg = tiny(minutes=60.0, patience=2, learning_rate=1e-12)  # nothing changes: no epoch improves on the first
    outcome = fit_classifier(train, val, cfg, CLASSES, out_path=tmp_path / "m.keras")
    assert outcome.stopped_reason == "early_stopping" and outcome.epochs_run == 3 and outcome.best_epoch == 1
    assert load_classifier(outcome.model_path).metadata["extra"]["best_epoch"] == 1


def test_epochs_alone_and_both_bounds(split, tmp_path) -> None:
    train, val = split
    outcome = fit_classifier(train, val, tiny(epochs=2), CLASSES, out_path=tmp_path / "a.keras")
    assert outcome.epochs_run == 2 and outcome.stopped_reason == "epochs"
    outcome = fit_classifier(train, val, tiny(epochs=2, minutes=60.0), CLASSES, out_path=tmp_path / "b.keras")
    assert outcome.epochs_run == 2 and outcome.stopped_reason == "epochs"


def test_learning_rate_schedules_and_run_fractions(split, tmp_path) -> None:
    assert scheduled_learning_rate("constant", 0.1, 0.9) == 0.1
    assert scheduled_learning_rate("cosine", 0.1, 0.0) == pytest.approx(0.1)
    assert scheduled_learning_rate("cosine", 0.1, 0.5) == pytest.approx(0.05)
    assert scheduled_learning_rate("cosine", 0.1, 1.0) == pytest.approx(0.0)
    assert scheduled_learning_rate("step", 0.1, 0.6) == 0.1
    assert scheduled_learning_rate("step", 0.1, 0.7) == pytest.approx(0.01)
    assert run_fractions(tiny(epochs=10), 5, 1, 30.0) == (0.5, 0.0)
    assert run_fractions(tiny(minutes=1.0), 5, 1, 30.0) == (0.0, 0.5)
    assert run_fractions(tiny(epochs=10, minutes=1.0), 5, 1, 15.0) == (0.5, 0.25)
    train, val = split
    outcome = fit_classifier(train, val, tiny(epochs=4, batch_size=8, schedule="cosine", optimizer="sgd"), CLASSES,
                             out_path=tmp_path / "m.keras")  # fmt: skip
    rates = outcome.history["learning_rate"]  # set before each epoch's last batch (second of two)
    expected = [scheduled_learning_rate("cosine", 3e-3, (2 * e + 1) / 8) for e in range(4)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("arch", "kind", "preset", "name", "width", "optimizer"),
    [
        ("vrn", "GPU", "auto", "gpu", 1.0, "sgd"),
        ("vrn", "CPU", "auto", "cpu", 0.25, "adam"),
        ("vrn", "CPU", "gpu", "gpu", 1.0, "sgd"),
        ("vrn", "GPU", "cpu", "cpu", 0.25, "adam"),
        ("voxnet", "GPU", "auto", "gpu", None, "adam"),
    ],
)
def test_preset_selection_per_device_kind(arch, kind, preset, name, width, optimizer) -> None:
    chosen, settings = preset_settings(arch, preset, kind)
    assert chosen == name and settings["optimizer"] == optimizer
    assert settings["model"].get("width") == width
    assert settings["batch_size"] == {"gpu": 150 if arch == "voxnet" else 50, "cpu": 32}[name]


def test_preset_none_and_unknown() -> None:
    assert resolve_preset("none", "GPU") is None and preset_settings("vrn", "none", "GPU") == (None, {"model": {}})
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        resolve_preset("fast", "CPU")


@pytest.mark.parametrize("rotations", [1, 3, 4])
def test_batched_voting_equals_one_grid_at_a_time(rotations: int) -> None:
    keras.utils.set_random_seed(1)
    model = build_classifier(ClassifierConfig.for_arch("voxnet", n_classes=3, input_shape=(16,) * 3, width=0.25))
    grids = np.stack([g for _, _, g in generate_shapes(3, seed=4, size=16, classes=CLASSES)])  # 9 grids
    seen = []
    batched = predict_probabilities(model, grids, rotations=rotations, batch_size=8, report=seen.append)
    for grid, row in zip(grids, batched, strict=True):
        turned = vertical_rotations(grid, rotations) if rotations > 1 else grid[None]
        single = [to_numpy(model(t[None, ..., None].astype(np.float32), training=False))[0] for t in turned]
        np.testing.assert_allclose(row, np.mean(single, axis=0), atol=1e-5)
    assert not np.allclose(batched, batched[0])  # the grids really differ
    assert seen[-1].done == seen[-1].total == 9 and math.isfinite(seen[-1].values["eta_s"])
    assert len(seen) == math.ceil(9 / max(1, 8 // rotations))
    np.testing.assert_array_equal(rotate_vertical(grids[0], 30.0), vertical_rotations(grids[0], 12)[1])


def test_default_rotations_follow_the_models_cost() -> None:
    assert choose_rotations(0.001, 300) == 12  # 3.6 s
    assert choose_rotations(0.01, 300) == 12  # 36 s
    assert choose_rotations(0.02, 300) == 6  # 12 would take 72 s; 8 would vote at 45 degrees, which 12 never trains
    assert choose_rotations(0.02, 300, preferred=8) == 8 and choose_rotations(0.05, 300, preferred=8) == 4
    assert choose_rotations(0.2, 300) == 1 and choose_rotations(0.2, 300, preferred=4) == 1
    assert choose_rotations(0.001, 300, preferred=4) == 4 and choose_rotations(math.nan, 10) == 1
