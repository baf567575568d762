"""Training voxel classifiers as plain tasks: on a class-per-folder data set (split, optionally searched and
refitted), with the new model's domain measured and its test split scored by voting. Qt-free; TensorFlow is imported
only inside the functions that need it. Prediction and evaluation live in :mod:`voxelstudio.tasks.classify`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxelstudio.core.atomic import check_destination
from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.tasks.classifier_domain import add_extra_metadata, pose_options, store_domain
from voxelstudio.tasks.datasets import GridDataset, load_class_folder, stratified_split

if TYPE_CHECKING:
    from voxelstudio.ml.classifier_config import ClassifierTrainConfig


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


MIN_PER_CLASS = 3
"""Grids a class needs: one each for training and validation, and one more so training keeps two."""


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
    check_destination(out, overwrite=True)  # a missing or read-only folder fails now, not after the training
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
                                       config.voting_views, report=report, cancel=cancel)  # fmt: skip
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
    rotations = config.voting_views if square and stopped_reason != "cancelled" else 1
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
