"""Voxel classification as plain tasks: train (or search) on a class-per-folder data set, evaluate, classify files,
and write the procedural shapes data set. Qt-free; TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxelstudio.core.errors import Cancelled, ModelError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.resources import resource_path
from voxelstudio.core.volume import Volume
from voxelstudio.tasks.classifier_domain import add_extra_metadata, orientation, pose_options, store_domain
from voxelstudio.tasks.datasets import GridDataset, fit_grid, load_class_folder, stratified_split

if TYPE_CHECKING:
    from voxelstudio.ml.classifier_config import ClassifierTrainConfig
    from voxelstudio.ml.classifier_domain import Domain
    from voxelstudio.ml.classifiers import LoadedClassifier

TrialFn = Callable[[dict[str, Any]], object]
"""Receives a search trial's record (parameters, val_accuracy, val_loss, epochs_run, state) when it ends."""


@dataclass(frozen=True)
class ClassifierTrainResult:
    """Outcome of :func:`train_classifier`. ``test_accuracy`` is measured with rotation voting on the held-out
    test split (None without one); ``trials`` lists the search's trials (empty without a search); ``refit_epochs``
    is the epoch count the retraining on train + validation was given (the best epoch; None without a refit: it ran
    them all only when ``refit_outcome`` is "done"); ``refit_outcome`` says how
    it ended: "done" (the refit model is at ``model_path``), "cancelled" or "failed: <reason>" (the validated model
    stayed at ``model_path``), None without a refit."""

    model_path: Path | None
    best_val_accuracy: float
    best_val_loss: float
    epochs_run: int
    stopped_reason: str
    test_accuracy: float | None
    split: dict[str, int]
    history: dict[str, list[float]] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)
    best_params: dict[str, Any] = field(default_factory=dict)
    refit_epochs: int | None = None
    refit_outcome: str | None = None


@dataclass(frozen=True)
class ClassPrediction:
    """Class probabilities of one volume, with the ``top`` classes first; ``out_of_domain`` says why the volume is
    unlike the model's classes (None when it is not: see :mod:`voxelstudio.ml.classifier_domain`)."""

    name: str
    top: list[tuple[str, float]]
    probabilities: dict[str, float]
    out_of_domain: str | None = None


def _label(volume: Volume) -> str:
    return str(volume.source) if volume.source is not None else (volume.name or "unnamed volume")


def default_classifier_path() -> Path:
    """The bundled classifier trained on the procedural shapes."""
    return resource_path("models", "classifier_default.keras")


def model_domain(loaded: LoadedClassifier) -> Domain:
    """The domain stored in ``loaded``'s metadata, else the documented fallback."""
    from voxelstudio.ml.classifier_domain import Domain

    return Domain.from_metadata(loaded.metadata.get("extra", {}), len(loaded.classes))


def load_trained_classifier(model_path: str | Path | None = None, *, trusted: bool = False) -> LoadedClassifier:
    """Load ``model_path`` (default: the bundled classifier)."""
    from voxelstudio.ml.classifiers import load_classifier

    return load_classifier(model_path or default_classifier_path(), trusted=trusted)


MIN_PER_CLASS = 3
"""Grids a class needs: one each for training and validation, and one more so training keeps two."""


def _vote_rotations(loaded: LoadedClassifier, rotations: int | None, path: Path, n_grids: int = 1) -> int:
    """``rotations``, or by default the most rotations (up to the model's own) that classify ``n_grids`` within
    EVALUATION_TARGET_S at the model's measured cost on this device; at most the 8 flips under ``any``."""
    from voxelstudio.ml.classifier_inference import choose_rotations, seconds_per_sample, view_count

    height, width, _ = loaded.input_shape
    preferred = loaded.train_config.vote_rotations if loaded.train_config else 12
    if rotations is None and height == width and preferred > 1:
        cost = seconds_per_sample(loaded.model, loaded.input_shape) if n_grids > 1 else 0.0
        rotations = choose_rotations(cost, n_grids, preferred=preferred)
    count = view_count(rotations if rotations is not None else 1, orientation(loaded))
    if count > 1 and height != width and orientation(loaded) == "upright":
        raise ModelError(path, f"rotation voting needs a square (H, W) input, the model takes {loaded.input_shape}")
    return count


def check_class_counts(dataset: GridDataset) -> None:
    """ValueError naming the classes with fewer than MIN_PER_CLASS grids."""
    few = [f"{name} ({count})" for name, count in dataset.counts().items() if count < MIN_PER_CLASS]
    if few:
        raise ValueError(f"classes with fewer than {MIN_PER_CLASS} grids: {', '.join(few)}; each class needs at "
                         "least 3 (training and validation)")  # fmt: skip


def refit_classifier(
    data: tuple[np.ndarray, np.ndarray],
    config: ClassifierTrainConfig,
    classes: tuple[str, ...],
    *,
    out: Path,
    domain: dict[str, Any] | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> str:
    """Retrain ``config`` on all of ``data`` (nothing left to validate on) in a hidden temporary folder beside
    ``out`` and move the model onto ``out`` only when the refit ran to its end, so a cancelled or failed refit leaves
    the validated model at ``out``; the refit model carries the validated model's ``domain`` (its own has no data
    left to measure one on). Returns "done", "cancelled" or "failed: <one line>"."""
    from voxelstudio.core.atomic import temporary_directory
    from voxelstudio.ml.classifier_training import fit_classifier

    report(Progress(0, None, f"refitting on train + validation for {config.epochs} epochs"))
    with temporary_directory(out) as folder:
        try:
            refit = fit_classifier(data, (data[0][:0], data[1][:0]), config, classes, out_path=folder / out.name,
                                   keep_last=True, report=report, cancel=cancel)  # fmt: skip
            if refit.model_path is not None and refit.stopped_reason != "cancelled" and domain is not None:
                add_extra_metadata(refit.model_path, {"domain": domain})
        except Cancelled:
            refit = None
        except Exception as exc:  # the validated model stays: say why the refit did not replace it
            problem = " ".join(str(exc).split()) or type(exc).__name__
            report(Progress(0, None, f"refit failed ({problem}); the validated model at {out.name} is kept"))
            return f"failed: {problem}"
        if refit is None or refit.stopped_reason == "cancelled" or refit.model_path is None:
            report(Progress(0, None, f"refit stopped; the validated model at {out.name} is kept"))
            return "cancelled"
        os.replace(refit.model_path, out)
    return "done"


def train_classifier(
    dataset: GridDataset,
    *,
    config: ClassifierTrainConfig,
    out: str | Path,
    resume: bool = False,
    search_trials: int = 0,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
    on_trial: TrialFn | None = None,
) -> ClassifierTrainResult:
    """Split ``dataset`` (stratified, seeded), train ``config``'s classifier (or search ``search_trials`` trials),
    with ``config.refit`` retrain it on train + validation for the best epoch count, then measure the model on the
    test split (when ``config.test_fraction`` > 0) with rotation voting. The model's class count and input shape
    are taken from the data set. ``on_trial`` receives each search trial's record when the trial ends; a stopped
    search keeps the best model so far."""
    from voxelstudio.ml.classifier_search import search_classifier
    from voxelstudio.ml.classifier_training import fit_classifier

    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"{out}: the model file must end in .keras")
    if resume and search_trials:
        raise ValueError("--resume continues one training run; it cannot be combined with --search")
    check_class_counts(dataset)
    model_cfg = dataclasses.replace(config.model, n_classes=len(dataset.classes), input_shape=dataset.grid_shape)
    config = dataclasses.replace(config, model=model_cfg).validate()
    train_idx, val_idx, test_idx = stratified_split(dataset.labels, (config.val_fraction, config.test_fraction),
                                                    config.seed)  # fmt: skip
    if len(val_idx) == 0:
        raise ValueError("too few grids per class to hold out a validation set; add data or raise the fraction")
    split = {"train": len(train_idx), "validation": len(val_idx), "test": len(test_idx)}
    train = (dataset.grids[train_idx], dataset.labels[train_idx])
    val = (dataset.grids[val_idx], dataset.labels[val_idx])
    trials: list[dict[str, Any]] = []
    best_params: dict[str, Any] = {}
    tuned = config
    if search_trials:
        found = search_classifier(train, val, config, dataset.classes, trials=search_trials, out_path=out,
                                  report=report, cancel=cancel, on_trial=on_trial)  # fmt: skip
        trials, best_params, tuned = found.trials, found.best_params, found.best_config or config
        stopped = cancel is not None and cancel.cancelled
        if found.best is None:
            if stopped:
                raise Cancelled("search")
            raise ValueError("no search trial produced a model")
        outcome = dataclasses.replace(found.best, stopped_reason="cancelled") if stopped else found.best
    else:
        outcome = fit_classifier(train, val, config, dataset.classes, out_path=out, resume=resume, report=report,
                                 cancel=cancel)  # fmt: skip
    domain = None
    if outcome.model_path is not None:
        domain = store_domain(outcome.model_path, val[0], dataset.grids[np.sort(np.concatenate([train_idx, val_idx]))],
                              domain_views(config, outcome.stopped_reason), report)  # fmt: skip
    refit_epochs, refit_outcome = None, None
    if config.refit and outcome.best_epoch and outcome.stopped_reason != "cancelled":
        refit_epochs = int(outcome.best_epoch)
        both = np.sort(np.concatenate([train_idx, val_idx]))
        refit_config = dataclasses.replace(tuned, epochs=refit_epochs, minutes=None)
        refit_outcome = refit_classifier((dataset.grids[both], dataset.labels[both]), refit_config, dataset.classes,
                                         out=out, domain=domain, report=report, cancel=cancel)  # fmt: skip
        if refit_outcome == "cancelled":
            outcome = dataclasses.replace(outcome, stopped_reason="cancelled")
    test_accuracy = None
    if outcome.model_path is not None and len(test_idx) and outcome.stopped_reason != "cancelled":
        test_accuracy = voted_accuracy(outcome.model_path, dataset.grids[test_idx], dataset.labels[test_idx],
                                       config.vote_rotations, report=report, cancel=cancel)  # fmt: skip
    return ClassifierTrainResult(
        outcome.model_path, outcome.best_val_accuracy, outcome.best_val_loss, outcome.epochs_run,
        outcome.stopped_reason, test_accuracy, split, outcome.history, trials, best_params, refit_epochs,
        refit_outcome,
    )  # fmt: skip


def domain_views(config: ClassifierTrainConfig, stopped_reason: str) -> int:
    """The views a newly trained model's domain is measured with: the config's vote on square (or posed) grids, one
    for a stopped run (to end soon)."""
    from voxelstudio.ml.classifier_inference import view_count

    square = config.model.input_shape[0] == config.model.input_shape[1] or config.model.orientation == "any"
    rotations = config.vote_rotations if square and stopped_reason != "cancelled" else 1
    return view_count(rotations, config.model.orientation)


def voted_accuracy(
    model_path: Path,
    grids: np.ndarray,
    labels: np.ndarray,
    rotations: int,
    *,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> float:
    """Accuracy of the classifier at ``model_path`` on ``grids`` (labels in its class order), voting over
    ``rotations`` views as the model presents them."""
    from voxelstudio.ml.classifiers import load_classifier, predict_probabilities

    report(Progress(0, None, "testing with rotation voting"))
    loaded = load_classifier(model_path)
    probabilities = predict_probabilities(loaded.model, grids, rotations=rotations, **pose_options(loaded),
                                          report=report, cancel=cancel)  # fmt: skip
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def classification_report(labels: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """accuracy, per-class accuracy (classes present in ``labels``), confusion (rows true, columns predicted)."""
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (np.asarray(labels), np.asarray(predicted)), 1)
    totals = confusion.sum(axis=1)
    per_class = {classes[i]: float(confusion[i, i] / totals[i]) for i in range(n) if totals[i]}
    accuracy = float(np.trace(confusion) / max(confusion.sum(), 1))
    return {"accuracy": accuracy, "per_class": per_class, "confusion": confusion.tolist(), "classes": list(classes)}


def evaluate_classifier(
    folder: str | Path,
    *,
    model_path: str | Path | None = None,
    rotations: int | None = None,
    trusted: bool = False,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix of a model on a class-per-folder data set (grids are
    resampled to the model's input; folder names must be among the model's classes)."""
    from voxelstudio.ml.classifiers import predict_probabilities

    path = Path(model_path or default_classifier_path())
    loaded = load_trained_classifier(path, trusted=trusted)
    dataset = load_class_folder(folder, grid_shape=loaded.input_shape, classes=loaded.classes, report=report,
                                cancel=cancel)  # fmt: skip
    count = _vote_rotations(loaded, rotations, path, len(dataset))
    report(Progress(0, len(dataset), f"classifying with {count} rotation(s)"))
    probabilities = predict_probabilities(loaded.model, dataset.grids, rotations=count, **pose_options(loaded),
                                          report=report, cancel=cancel)  # fmt: skip
    result = classification_report(dataset.labels, probabilities.argmax(axis=1), loaded.classes)
    return {**result, "count": len(dataset), "rotations": count, "model": str(path)}


def classify_volumes(
    volumes: Sequence[Volume],
    *,
    model_path: str | Path | None = None,
    top: int = 3,
    rotations: int | None = None,
    trusted: bool = False,
    report: ReportFn = null_report,
) -> list[ClassPrediction]:
    """Top classes of each volume (resampled to the model's input, averaged over rotations about z)."""
    from voxelstudio.ml.classifiers import predict_probabilities

    path = Path(model_path or default_classifier_path())
    loaded = load_trained_classifier(path, trusted=trusted)
    count = _vote_rotations(loaded, rotations, path, len(volumes))
    fitted = [fit_grid(v.data, loaded.input_shape, path=v.source or v.name) for v in volumes]
    resampled = [_label(v) for v, (_, changed) in zip(volumes, fitted, strict=True) if changed]
    if resampled:
        target = "x".join(str(n) for n in loaded.input_shape)
        warnings.warn(f"resampled to the model's {target} input: {', '.join(resampled)}", stacklevel=2)
    grids = np.stack([grid for grid, _ in fitted])
    probabilities = predict_probabilities(loaded.model, grids, rotations=count, **pose_options(loaded),
                                          report=report)  # fmt: skip
    domain = model_domain(loaded)
    results = []
    for volume, row, grid in zip(volumes, probabilities, grids, strict=True):
        order = np.argsort(-row, kind="stable")[: max(top, 1)]
        results.append(
            ClassPrediction(
                _label(volume),
                [(loaded.classes[i], float(row[i])) for i in order],
                {name: float(p) for name, p in zip(loaded.classes, row, strict=True)},
                domain.check(row, grid),
            )
        )
    return results


@dataclass(frozen=True)
class VolumeClassification:
    """Class probabilities of one volume (in ``classes`` order) and the Grad-CAM heat map of the predicted class
    over the volume's voxels, in [0, 1]. ``grid`` is the occupancy grid the model saw; ``out_of_domain`` says why
    the volume is unlike the model's classes (None when it is not)."""

    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    predicted: str
    heatmap: Volume
    grid: np.ndarray
    rotations: int
    model: str
    layer: str
    out_of_domain: str | None = None


def classify_with_heatmap(
    volume: Volume | np.ndarray,
    model_path: str | Path | None = None,
    *,
    rotations: int | None = None,
    trusted: bool = False,
) -> VolumeClassification:
    """Classify any volume (a microscope volume too: see :func:`~voxelstudio.tasks.volume_grid.place_volume`) with
    rotation voting, and explain the predicted class with Grad-CAM of the unrotated grid."""
    from voxelstudio.ml.classifiers import predict_probabilities
    from voxelstudio.ml.gradcam import grad_cam
    from voxelstudio.ml.voxel_pose import principal_pose
    from voxelstudio.tasks.volume_grid import place_volume

    volume = volume if isinstance(volume, Volume) else Volume(np.asarray(volume), name="array")
    path = Path(model_path or default_classifier_path())
    loaded = load_trained_classifier(path, trusted=trusted)
    count = _vote_rotations(loaded, rotations, path)
    placed = place_volume(volume, loaded.input_shape)
    probabilities = predict_probabilities(loaded.model, placed.grid[None], rotations=count,
                                          **pose_options(loaded))[0]  # fmt: skip
    predicted = int(np.argmax(probabilities))
    if orientation(loaded) == "any":  # explain the posed grid the model saw, then map the map back
        pose = principal_pose(placed.grid, loaded.pose_version)
        cam = grad_cam(loaded.model, pose.apply(placed.grid), class_index=predicted)
        cam_map = pose.invert(np.asarray(cam.heatmap))
    else:
        cam = grad_cam(loaded.model, placed.grid, class_index=predicted)
        cam_map = cam.heatmap
    heat = placed.to_volume(cam_map, volume.shape)
    name = f"for {loaded.classes[predicted]}"
    heatmap = volume.replace(data=heat, name=name, source=None, metadata={"gradcam": loaded.classes[predicted]})
    return VolumeClassification(
        loaded.classes, tuple(float(p) for p in probabilities), loaded.classes[predicted], heatmap, placed.grid,
        count, str(path), cam.layer, model_domain(loaded).check(probabilities, placed.grid),
    )  # fmt: skip


def train_classifier_folder(
    folder: str | Path,
    *,
    config: ClassifierTrainConfig,
    out: str | Path,
    search_trials: int = 0,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
    on_trial: TrialFn | None = None,
) -> ClassifierTrainResult:
    """Load the class-per-folder data set at ``config``'s input size, then :func:`train_classifier` on it (a search
    of ``search_trials`` trials when > 0)."""
    dataset = load_class_folder(folder, grid_shape=config.model.input_shape, strict=True, report=report,
                                cancel=cancel)  # fmt: skip
    return train_classifier(dataset, config=config, out=out, search_trials=search_trials, report=report,
                            cancel=cancel, on_trial=on_trial)  # fmt: skip
