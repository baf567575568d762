"""fit_classifier and search_classifier: learning a tiny problem, batches, cancel, time budget, resume, search."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import optuna
import pytest
from model_files import with_metadata

from voxelstudio.core.errors import ModelError
from voxelstudio.core.progress import CancelToken
from voxelstudio.ml.classifier_config import ClassifierTrainConfig
from voxelstudio.ml.classifier_search import _suggest, search_classifier, search_space
from voxelstudio.ml.classifier_training import GeneratedGrids, GridBatches, balanced_class_weights, fit_classifier
from voxelstudio.ml.classifiers import load_classifier, predict_probabilities
from voxelstudio.ml.fit import checkpoint_paths
from voxelstudio.sim.shapes import ShapeStream, generate_shapes

CLASSES = ("sphere", "cube", "torus")


@pytest.fixture(scope="module")
def shapes() -> tuple[np.ndarray, np.ndarray]:
    data = list(generate_shapes(40, seed=0, size=16, classes=CLASSES))
    return np.stack([g for _, _, g in data]), np.array([CLASSES.index(c) for c, _, _ in data])


@pytest.fixture(scope="module")
def split(shapes):
    grids, labels = shapes
    order = np.random.default_rng(0).permutation(len(labels))
    train, val = order[:90], order[90:]
    return (grids[train], labels[train]), (grids[val], labels[val])


def tiny(**overrides) -> ClassifierTrainConfig:
    model = {"n_classes": 3, "input_shape": (16, 16, 16), "width": 0.25}
    settings = {"epochs": 2, "batch_size": 16, "learning_rate": 3e-3, "augment": False, **overrides}
    return ClassifierTrainConfig.for_arch("voxnet", model_overrides=model, **settings)


class Recorder:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.progress, self.cancel, self.cancel_after = [], CancelToken(), cancel_after

    def __call__(self, progress) -> None:
        self.progress.append(progress)
        if self.cancel_after is not None and len(self.batches) >= self.cancel_after:
            self.cancel.cancel()

    @property
    def batches(self):
        return [p for p in self.progress if p.message.endswith("training")]


def test_tiny_voxnet_learns_three_shapes_well_above_chance(split, tmp_path) -> None:
    train, val = split
    recorder = Recorder()
    outcome = fit_classifier(train, val, tiny(epochs=10), CLASSES, out_path=tmp_path / "m.keras", report=recorder)
    assert outcome.stopped_reason == "epochs" and outcome.epochs_run == 10
    assert outcome.best_val_accuracy >= 0.6  # chance is 1/3
    assert outcome.history["loss"][-1] < outcome.history["loss"][0]
    loaded = load_classifier(outcome.model_path)
    accuracy = np.mean(predict_probabilities(loaded.model, val[0]).argmax(axis=1) == val[1])
    assert accuracy == pytest.approx(outcome.best_val_accuracy)
    last = recorder.progress[-1].values
    assert last["epoch"] == 10 and "val_accuracy" in last and "val_psnr" not in last
    assert len(recorder.batches) == 10 * 6  # ceil(90 / 16) batches per epoch


def test_any_orientation_trains_and_predicts_on_posed_grids(split, tmp_path) -> None:
    train, val = split
    model = {"n_classes": 3, "input_shape": (16, 16, 16), "width": 0.25, "orientation": "any"}
    cfg = ClassifierTrainConfig.for_arch("voxnet", model_overrides=model, epochs=2, batch_size=16)
    outcome = fit_classifier(train, val, cfg, CLASSES, out_path=tmp_path / "m.keras")
    loaded = load_classifier(outcome.model_path)
    assert loaded.config.orientation == "any"
    probabilities = predict_probabilities(loaded.model, val[0], orientation=loaded.config.orientation)
    assert np.mean(probabilities.argmax(axis=1) == val[1]) == pytest.approx(outcome.best_val_accuracy)


def test_batches_are_shuffled_weighted_and_deterministic() -> None:
    grids = np.zeros((10, 12, 12, 12), np.uint8)
    grids[:, 3:8, 4:6, 2:9] = 1
    labels = np.array([0] * 7 + [1] * 3)
    np.testing.assert_allclose(balanced_class_weights(labels, 3), [10 / 14, 10 / 6, 0.0])
    cfg = ClassifierTrainConfig(batch_size=4)
    first = GridBatches(grids, labels, cfg, 4, epoch=0)
    x, y, w = first[0]
    assert len(first) == 3 and x.shape == (4, 12, 12, 12, 1) and x.dtype == np.float32
    np.testing.assert_allclose(w, balanced_class_weights(labels, 10)[y])
    np.testing.assert_array_equal(GridBatches(grids, labels, cfg, 4, epoch=0)[0][0], x)
    seen = np.concatenate([first[i][1] for i in range(3)])
    assert sorted(seen.tolist()) == sorted(labels.tolist())  # every sample once per epoch
    before = first.order.copy()
    first.on_epoch_end()
    assert first.epoch == 1 and not np.array_equal(first.order, before)


def test_cancel_stops_within_a_batch_and_keeps_a_model(split, tmp_path) -> None:
    train, val = split
    recorder = Recorder(cancel_after=2)
    outcome = fit_classifier(train, val, tiny(epochs=5), CLASSES, out_path=tmp_path / "m.keras", report=recorder,
                             cancel=recorder.cancel)  # fmt: skip
    assert outcome.stopped_reason == "cancelled"
    assert len(recorder.batches) == 2
    assert outcome.model_path is not None and load_classifier(outcome.model_path).classes == CLASSES


def test_time_budget_stops_training(split, tmp_path) -> None:
    train, val = split
    outcome = fit_classifier(train, val, tiny(epochs=50, minutes=1e-4), CLASSES, out_path=tmp_path / "m.keras")
    assert outcome.stopped_reason == "time" and outcome.epochs_run == 1


def test_resume_continues_from_the_last_checkpoint(split, tmp_path) -> None:
    train, val = split
    out = tmp_path / "m.keras"
    first = fit_classifier(train, val, tiny(epochs=1), CLASSES, out_path=out)
    assert first.epochs_run == 1 and checkpoint_paths(out)[0].exists()
    resumed = fit_classifier(train, val, tiny(epochs=2), CLASSES, out_path=out, resume=True)
    assert resumed.epochs_run == 2 and resumed.history["epoch"] == [1, 2]
    assert resumed.history["val_accuracy"][0] == first.history["val_accuracy"][0]
    other = ClassifierTrainConfig.for_arch("voxnet", model_overrides={"n_classes": 3, "input_shape": (16,) * 3})
    with pytest.raises(ModelError, match="different architecture"):
        fit_classifier(train, val, other, CLASSES, out_path=out, resume=True)
    with pytest.raises(ModelError, match="no checkpoint"):
        fit_classifier(train, val, tiny(), CLASSES, out_path=tmp_path / "none.keras", resume=True)


def test_resume_refuses_validation_grids_other_than_the_runs(split, tmp_path) -> None:
    """A data set re-split (a grid added, another --seed) would train on what the run validated on."""
    train, val = split
    out = tmp_path / "m.keras"
    fit_classifier(train, val, tiny(epochs=1), CLASSES, out_path=out)
    swapped = (np.concatenate([train[0][:1], val[0][1:]]), np.concatenate([train[1][:1], val[1][1:]]))
    with pytest.raises(ValueError, match=r"validation grids differ from those of the run --resume continues"):
        fit_classifier(train, swapped, tiny(epochs=2), CLASSES, out_path=out, resume=True)
    assert fit_classifier(train, val, tiny(epochs=2), CLASSES, out_path=out, resume=True).epochs_run == 2


def test_resume_keeps_and_reports_a_best_model_newer_than_the_checkpoint(split, tmp_path) -> None:
    train, val = split
    out = tmp_path / "m.keras"
    fit_classifier(train, val, tiny(epochs=1), CLASSES, out_path=out)
    extra = load_classifier(out).metadata["extra"]
    ahead = {**extra, "best_epoch": 2, "best_val_loss": 1e-9, "val_accuracy": 0.77}  # saved, then a crash
    with_metadata(out, tmp_path / "ahead.keras", extra=ahead).replace(out)
    resumed = fit_classifier(train, val, tiny(epochs=3), CLASSES, out_path=out, resume=True)
    assert (resumed.best_epoch, resumed.best_val_loss, resumed.best_val_accuracy) == (2, 1e-9, 0.77)
    assert load_classifier(out).metadata["extra"]["best_epoch"] == 2  # epochs 2 and 3 again did not replace it


def test_resume_refuses_a_checkpoint_of_posed_grids_from_another_pose_version(split, tmp_path) -> None:
    train, val = split
    out = tmp_path / "m.keras"
    posed = dataclasses.replace(tiny(epochs=1), model=dataclasses.replace(tiny().model, orientation="any"))
    fit_classifier(train, val, posed, CLASSES, out_path=out)
    last = checkpoint_paths(out)[0]
    # the checkpoint of a run made before the current pose version
    with_metadata(last, tmp_path / "older.keras", pose_version=2).replace(last)
    with pytest.raises(ModelError, match="pose version"):
        fit_classifier(train, val, posed, CLASSES, out_path=out, resume=True)


def test_search_keeps_the_best_trial_by_validation_accuracy(split, tmp_path) -> None:
    train, val = split
    out = tmp_path / "best.keras"
    recorder = Recorder()
    found = search_classifier(train, val, tiny(epochs=1), CLASSES, trials=2, out_path=out, report=recorder)
    scores = [t["val_accuracy"] for t in found.trials]
    assert len(scores) == 2 and found.best.best_val_accuracy == max(scores)
    assert found.model_path == out and load_classifier(out).config.width == found.best_params["width"]
    record = json.loads(out.with_name("best.search.json").read_text())
    assert [t["trial"] for t in record["trials"]] == [1, 2] and record["best"]["val_accuracy"] == max(scores)
    assert {p.values["trial"] for p in recorder.batches} == {1, 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "best.search.json"]  # trials cleaned up


def test_a_diverged_search_trial_fails_alone_and_the_search_goes_on(split, tmp_path, monkeypatch) -> None:
    import voxelstudio.ml.classifier_search as search
    from voxelstudio.ml.fit import TrainingDiverged

    calls = []

    def first_diverges(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise TrainingDiverged("training diverged: the loss became NaN or infinite in epoch 1, batch 1")
        return fit_classifier(*args, **kwargs)

    monkeypatch.setattr(search, "fit_classifier", first_diverges)
    train, val = split
    out = tmp_path / "best.keras"
    found = search_classifier(train, val, tiny(epochs=1), CLASSES, trials=2, out_path=out)
    assert [t["state"] for t in found.trials] == ["failed", "complete"] and found.trials[0]["val_accuracy"] is None
    assert found.best.best_val_accuracy == found.trials[1]["val_accuracy"] and out.is_file()
    assert out.with_name("best.search.json").is_file()


def test_search_space_and_seeded_suggestions() -> None:
    cfg = tiny()
    space = search_space(cfg, n_train=40)
    assert space["batch_size"] == [16, 32, 40] and space["width"] == [0.0625, 0.125, 0.25]
    suggestions = []
    for _ in range(2):
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
        suggestions.append(_suggest(study.ask(), space))
    assert suggestions[0] == suggestions[1]
    assert 1e-4 <= suggestions[0]["learning_rate"] <= 1e-2 and 0.0 <= suggestions[0]["dropout"] <= 0.6


def test_generated_grids_train_a_model_posed_and_augmented_in_a_worker(split, tmp_path) -> None:
    _, val = split
    stream = ShapeStream(batch_size=16, size=16, seed=1, hard_prob=0.2, classes=CLASSES)
    model = {"n_classes": 3, "input_shape": (16, 16, 16), "width": 0.25, "orientation": "any"}
    cfg = ClassifierTrainConfig.for_arch("voxnet", model_overrides=model, epochs=12, batch_size=16, learning_rate=3e-3)
    recorder = Recorder()
    outcome = fit_classifier(GeneratedGrids(stream, steps=5, workers=1), val, cfg, CLASSES,
                             out_path=tmp_path / "m.keras", report=recorder)  # fmt: skip
    assert outcome.stopped_reason == "epochs" and outcome.epochs_run == 12 and len(recorder.batches) == 12 * 5
    assert outcome.best_val_accuracy >= 0.6  # chance is 1/3; fresh shapes every batch, none seen twice
    loaded = load_classifier(outcome.model_path)
    assert loaded.config.orientation == "any" and loaded.metadata["extra"]["train_grids"] is None


def test_generated_grids_go_on_with_new_batches_after_a_resume() -> None:
    stream = ShapeStream(batch_size=16, size=16, classes=CLASSES)
    data = GeneratedGrids(stream, steps=4).dataset(tiny(), epoch=3)  # a run resumed after 3 epochs
    assert data.key(0) == 12 and data.num_batches == 4
    x, y = data[0]
    assert x.shape == (16, 16, 16, 16, 1) and y.shape == (16, 1)
    np.testing.assert_array_equal(y[:, 0], stream(12)[1])
    np.testing.assert_array_equal(x[..., 0], stream(12)[0])  # tiny(): upright, not augmented


def _broken_batch(key: int) -> tuple[np.ndarray, np.ndarray]:
    raise RuntimeError(f"no shapes for batch {key}")


def test_an_error_in_the_generator_stops_training_with_that_error(split, tmp_path) -> None:
    _, val = split
    with pytest.raises(RuntimeError, match="no shapes for batch"):
        fit_classifier(GeneratedGrids(_broken_batch, steps=2), val, tiny(), CLASSES, out_path=tmp_path / "m.keras")
