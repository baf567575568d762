"""train_classifier's splits (10 % stratified validation, a test part only when asked), --refit on train +
validation, and the data it refuses: too few grids per class, non-binary grids, grids of mixed sizes."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import dataclasses

import numpy as np
import pytest

from voxelstudio.core.errors import VolumeReadError
from voxelstudio.sim.shapes import generate_shapes
from voxelstudio.tasks.classify_train import train_classifier
from voxelstudio.tasks.datasets import GridDataset, load_class_folder, stratified_split

CLASSES = ("sphere", "cube", "torus")


def shapes(per_class: int) -> GridDataset:
    data = list(generate_shapes(per_class, seed=3, size=16, classes=CLASSES))
    return GridDataset(np.stack([g for _, _, g in data]), np.array([CLASSES.index(c) for c, _, _ in data]), CLASSES)


def config(**overrides):
    from voxelstudio.ml.classifier_config import ClassifierTrainConfig

    model = {"width": 0.125, "input_shape": (16,) * 3}
    settings = {"epochs": 2, "batch_size": 16, "augment": False, "vote_rotations": 1, **overrides}
    return ClassifierTrainConfig.for_arch("voxnet", model_overrides=model, **settings)


def test_default_split_is_ten_percent_validation_stratified_and_no_test() -> None:
    labels = np.repeat([0, 1, 2], [60, 30, 20])
    train, val, test = stratified_split(labels, (config().val_fraction, config().test_fraction), seed=0)
    assert np.bincount(labels[val], minlength=3).tolist() == [6, 3, 2] and len(test) == 0
    assert np.bincount(labels[train], minlength=3).tolist() == [54, 27, 18]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(110))


def test_train_classifier_splits_and_tests_only_when_asked(tmp_path: Path) -> None:
    data = shapes(10)
    result = train_classifier(data, config=config(), out=tmp_path / "a.keras")
    assert result.split == {"train": 27, "validation": 3, "test": 0} and result.test_accuracy is None
    asked = config(test_fraction=0.2)
    result = train_classifier(data, config=asked, out=tmp_path / "b.keras")
    assert result.split == {"train": 21, "validation": 3, "test": 6}
    from voxelstudio.tasks.classify_train import voted_accuracy

    *_, test = stratified_split(data.labels, (asked.val_fraction, asked.test_fraction), asked.seed)
    expected = voted_accuracy(result.model_path, data.grids[test], data.labels[test], asked.voting_views)
    assert result.test_accuracy == expected  # the held-out grids' score, not the training grids'


def test_refit_trains_on_train_and_validation_for_the_best_epoch_count(tmp_path: Path) -> None:
    from voxelstudio.ml.classifiers import load_classifier

    data = shapes(10)
    plain = train_classifier(data, config=config(epochs=3), out=tmp_path / "plain.keras")
    assert load_classifier(plain.model_path).metadata["extra"]["train_grids"] == 27
    refit = train_classifier(data, config=config(epochs=3, refit=True), out=tmp_path / "refit.keras")
    loaded = load_classifier(refit.model_path)
    best_epoch = plain.history["epoch"][int(np.argmin(plain.history["val_loss"]))]
    assert refit.refit_epochs == best_epoch
    domain = load_classifier(plain.model_path).metadata["extra"]["domain"]
    assert domain["validation_grids"] == 3  # measured on the validation grids, before the refit saw them
    assert loaded.metadata["extra"] == {"epochs": best_epoch, "train_grids": 30, "domain": domain}  # all 27 + 3
    assert loaded.train_config.refit and loaded.train_config.epochs == best_epoch


def test_classes_with_fewer_than_three_grids_are_refused(tmp_path: Path) -> None:
    data = shapes(5)
    keep = np.flatnonzero(data.labels != 2)[:8].tolist() + np.flatnonzero(data.labels == 2)[:2].tolist()
    small = data.subset(np.array(keep))
    with pytest.raises(ValueError, match=r"classes with fewer than 3 grids: torus \(2\)"):
        train_classifier(small, config=config(), out=tmp_path / "m.keras")


def test_strict_loading_refuses_non_binary_and_mixed_sizes(tmp_path: Path) -> None:
    grid = np.zeros((16,) * 3, np.float32)
    grid[4:12, 4:12, 4:12] = 1.0
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "x.npy", grid)
        np.save(tmp_path / name / "y.npy", grid * 255)  # two values: fine
    assert len(load_class_folder(tmp_path, grid_shape=(16,) * 3, strict=True)) == 4
    np.save(tmp_path / "b" / "z.npy", grid * np.linspace(0, 1, 16, dtype=np.float32))
    with pytest.raises(VolumeReadError, match=r"z\.npy: grid holds \d+ distinct values .* binary occupancy"):
        load_class_folder(tmp_path, grid_shape=(16,) * 3, strict=True)
    assert len(load_class_folder(tmp_path, grid_shape=(16,) * 3)) == 5  # not strict: thresholded
    np.save(tmp_path / "b" / "z.npy", np.pad(grid, 2))
    with pytest.raises(ValueError, match=r"z\.npy: grid is 20x20x20 but x\.npy is 16x16x16"):
        load_class_folder(tmp_path, grid_shape=(16,) * 3, strict=True)


def test_refit_config_round_trips() -> None:
    from voxelstudio.ml.classifier_config import ClassifierTrainConfig

    cfg = dataclasses.replace(config(), refit=True, preset="cpu", minutes=2.0, epochs=None)
    assert ClassifierTrainConfig.from_dict(cfg.to_dict()) == cfg


def _refit_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: bool):
    """Train with --refit and stop (cancel or an error) the refit as soon as it starts."""
    from voxelstudio.core.progress import CancelToken
    from voxelstudio.ml import classifier_training

    cancel, fit = CancelToken(), classifier_training.fit_classifier

    def fit_or_fail(*args, **kwargs):
        if kwargs.get("keep_last") and fail:
            raise MemoryError("refit ran out of memory")
        return fit(*args, **kwargs)

    def report(progress) -> None:
        if progress.message.startswith("refitting") and not fail:
            cancel.cancel()

    monkeypatch.setattr(classifier_training, "fit_classifier", fit_or_fail)
    out = tmp_path / "m.keras"
    return out, train_classifier(shapes(10), config=config(epochs=1, refit=True), out=out, report=report,
                                 cancel=cancel)  # fmt: skip


@pytest.mark.parametrize("fail", [False, True], ids=["cancelled", "failed"])
def test_a_stopped_refit_keeps_the_validated_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail) -> None:
    from voxelstudio.ml.classifiers import load_classifier

    out, result = _refit_run(tmp_path, monkeypatch, fail)
    extra = load_classifier(out).metadata["extra"]
    assert extra["train_grids"] == 27 and "epochs" not in extra  # the validated model, not a refit's
    assert result.model_path == out
    assert result.refit_outcome == ("failed: refit ran out of memory" if fail else "cancelled")
    assert result.stopped_reason == ("epochs" if fail else "cancelled")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.last.keras"]  # no temporary left


def test_a_stopped_search_keeps_the_best_model_so_far(tmp_path: Path) -> None:
    from voxelstudio.core.progress import CancelToken
    from voxelstudio.ml.classifiers import load_classifier

    cancel, ended = CancelToken(), []

    def on_trial(record) -> None:
        ended.append(record)
        cancel.cancel()  # Stop while the second trial would start

    out = tmp_path / "m.keras"
    result = train_classifier(shapes(10), config=config(epochs=1), out=out, search_trials=3, cancel=cancel,
                              on_trial=on_trial)  # fmt: skip
    assert [r["trial"] for r in ended] == [1] and ended[0]["state"] == "complete"
    assert result.stopped_reason == "cancelled" and result.model_path == out and len(result.trials) == 1
    assert load_classifier(out).config.width == ended[0]["width"]  # the first trial's model, kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.search.json"]
