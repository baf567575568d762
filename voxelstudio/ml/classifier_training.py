"""Training a voxel classifier with the denoiser's machinery: progress, cancel within a batch, a time budget,
atomic checkpoints, resume, and the device's distribution strategy.

Grids are occupancy arrays (N, H, W, Z) in {0, 1} (uint8 is fine) with integer labels. Each epoch shuffles the
training set and augments it (rotation about z, flips, shifts; see :mod:`voxel_augment`; grids of a model for
objects in any orientation are put in their principal pose first and flipped, not turned); the loss is weighted by
inverse class frequency. The best model by validation loss is saved at ``out_path`` (without optimizer state) and the
last epoch at ``<out stem>.last.keras`` with the training state in its metadata, which ``resume=True`` continues.
The last checkpoint is written at most every LAST_CHECKPOINT_EVERY_S seconds and when the run ends (as for every
fit: :class:`~voxelstudio.ml.callbacks.CheckpointCallback`).

The run's length follows the config: a fixed number of epochs, a time budget (then early stopping on a long
patience), or whichever ends first; the learning-rate schedule and the progress total follow the same measure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np

from voxelstudio.core.errors import ModelError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.ml.backend import jit_compile
from voxelstudio.ml.callbacks import LAST_CHECKPOINT_EVERY_S, RunState, ValidationCallback, run_shares
from voxelstudio.ml.classifier_config import ClassifierTrainConfig
from voxelstudio.ml.classifiers import build_classifier, load_classifier, predict_probabilities, save_classifier
from voxelstudio.ml.fit import (
    checkpoint_note,
    checkpoint_paths,
    finite,
    fit_scope,
    restore_run_state,
    resume_checkpoint,
    run_fit,
    training_state,
)
from voxelstudio.ml.persistence import read_members
from voxelstudio.ml.sim_dataset import BatchFn, SimulatedPatches
from voxelstudio.ml.voxel_augment import AugmentedBatches, augment_batch
from voxelstudio.ml.voxel_pose import POSE_VERSION, to_principal_pose


@dataclass(frozen=True)
class ClassifierOutcome:
    """What a training run produced; ``epochs_run`` counts resumed epochs too."""

    history: dict[str, list[float]]
    best_val_loss: float
    best_val_accuracy: float
    best_epoch: int | None
    epochs_run: int
    stopped_reason: str  # "epochs" | "time" | "early_stopping" | "cancelled"
    model_path: Path | None


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """n / (k * count_c) per class (1 everywhere for balanced data; 0 for classes absent from ``labels``)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def augment_settings(cfg: ClassifierTrainConfig) -> dict[str, Any]:
    """:func:`augment_batch`'s settings: the config's turns about z and horizontal flips for upright objects; for
    posed grids (``orientation="any"``) no turn and a flip of each axis with probability 1/2 (the pose's signs)."""
    if cfg.model.orientation == "any":
        return {"rotations": 1, "flip_prob": 0.5, "max_shift": cfg.max_shift, "flip_axes": (0, 1, 2)}
    return {"rotations": cfg.rotations, "flip_prob": cfg.flip_prob, "max_shift": cfg.max_shift}


class GridBatches(keras.utils.PyDataset):
    """Shuffled, augmented, class-weighted batches of grids; deterministic per (seed, epoch, batch)."""

    def __init__(
        self, grids: np.ndarray, labels: np.ndarray, cfg: ClassifierTrainConfig, batch_size: int, epoch: int
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.grids, self.labels, self.cfg, self.batch_size = grids, np.asarray(labels, np.int64), cfg, batch_size
        n_classes = cfg.model.n_classes
        self.weights = balanced_class_weights(self.labels, n_classes) if cfg.class_weights else np.ones(n_classes)
        self.epoch = epoch
        self.order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.cfg.seed, self.epoch]).permutation(len(self.labels))

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        grids = self.grids[chosen]
        if self.cfg.augment:
            rng = np.random.default_rng([self.cfg.seed, self.epoch, index])
            x = augment_batch(grids, rng, **augment_settings(self.cfg))
        else:
            x = grids.astype(np.float32)
        y = self.labels[chosen]
        return x[..., None], y, self.weights[y].astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._permutation()


class AccuracyValidator:
    """``validate(model, want_preview) -> (loss, accuracy, None)`` on the validation grids (no voting: fast)."""

    def __init__(self, grids: np.ndarray, labels: np.ndarray, batch_size: int) -> None:
        self.grids, self.labels, self.batch_size = grids, np.asarray(labels, np.int64), batch_size

    def __call__(self, model: keras.Model, want_preview: bool) -> tuple[float, float, None]:
        if len(self.labels) == 0:
            return math.nan, math.nan, None
        probabilities = predict_probabilities(model, self.grids, batch_size=self.batch_size)
        chosen = probabilities[np.arange(len(self.labels)), self.labels]
        loss = float(-np.mean(np.log(np.clip(chosen, 1e-7, 1.0))))
        return loss, float(np.mean(probabilities.argmax(axis=1) == self.labels)), None


def scheduled_learning_rate(schedule: str, base: float, fraction: float) -> float:
    """The learning rate at ``fraction`` (0..1) of a run: constant, cosine to zero, or a tenth from 2/3 on."""
    fraction = min(max(fraction, 0.0), 1.0)
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * fraction))
    if schedule == "step":
        return base * (0.1 if fraction >= 2.0 / 3.0 else 1.0)
    return base


def run_fractions(cfg: ClassifierTrainConfig, steps_done: int, steps: int, elapsed_s: float) -> tuple[float, float]:
    """(fraction of the epoch cap done, fraction of the time budget used); 0 for a bound the config does not set."""
    budget_s = None if cfg.minutes is None else cfg.minutes * 60.0
    return run_shares(steps_done, cfg.max_epochs * steps, elapsed_s, budget_s, budget_only=cfg.budget_driven)


class ScheduleCallback(keras.callbacks.Callback):
    """Sets the learning rate before every batch from the run's progress: the larger of its epoch fraction and its
    time fraction, so the schedule ends when the run does."""

    def __init__(self, state: RunState, cfg: ClassifierTrainConfig) -> None:
        super().__init__()
        self.state, self.cfg = state, cfg

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.cfg.schedule == "constant":
            return
        done = self.state.epoch * self.state.steps + batch
        fraction = max(run_fractions(self.cfg, done, self.state.steps, time.monotonic() - self.state.started))
        self.model.optimizer.learning_rate = scheduled_learning_rate(self.cfg.schedule, self.cfg.learning_rate,
                                                                     fraction)  # fmt: skip


def make_optimizer(cfg: ClassifierTrainConfig) -> keras.optimizers.Optimizer:
    """Adam, or SGD with Nesterov momentum 0.9 (VRN's paper), at ``cfg.learning_rate``."""
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(cfg.learning_rate, momentum=0.9, nesterov=True)
    return keras.optimizers.Adam(cfg.learning_rate)


def _value_at(history: dict[str, list[Any]], key: str, epoch: int | None) -> float:
    epochs = history.get("epoch", [])
    if epoch is None or epoch not in epochs or key not in history:
        return math.nan
    value = history[key][epochs.index(epoch)]
    return math.nan if value is None else float(value)


def _best_accuracy(out_path: Path, history: dict[str, list[Any]], best_epoch: int | None) -> float:
    """The validation accuracy of the best model: as recorded in its file at ``out_path`` when that file holds
    ``best_epoch`` (a resumed run may have taken a best model newer than its checkpoint, whose epoch it trained
    again), else from ``history``."""
    try:
        _, metadata = read_members(out_path)
    except ModelError:
        metadata = {}
    extra = metadata.get("extra", {})
    recorded = extra.get("val_accuracy")
    if best_epoch is not None and extra.get("best_epoch") == best_epoch and isinstance(recorded, (int, float)):
        return float(recorded)
    return _value_at(history, "val_accuracy", best_epoch)


def _same_model(cfg: ClassifierTrainConfig, loaded: Any) -> bool:
    """Whether a checkpoint continues ``cfg``'s run: the same network and, for posed grids, the same pose."""
    return loaded.config == cfg.model and (cfg.model.orientation != "any" or loaded.pose_version == POSE_VERSION)


@dataclass(frozen=True)
class GeneratedGrids:
    """Training grids made afresh for every batch instead of a fixed set: ``make_batch(key) -> (grids (B, H, W, Z)
    in {0, 1}, labels)``, picklable and depending on nothing but ``key`` (e.g. ``voxelstudio.sim.shapes.ShapeStream``
    made with the config's batch size), ``steps`` batches an epoch, made by ``workers`` processes (0: in the
    training process). Classes should come about equally often: the loss is not weighted."""

    make_batch: BatchFn
    steps: int = 100
    workers: int = 0

    def dataset(self, cfg: ClassifierTrainConfig, epoch: int) -> SimulatedPatches:
        """The batches, posed (under ``orientation="any"``) and augmented where they are made, from ``epoch`` on."""
        pose = POSE_VERSION if cfg.model.orientation == "any" else None
        settings = augment_settings(cfg) if cfg.augment else None
        batches = AugmentedBatches(self.make_batch, seed=cfg.seed, pose_version=pose, settings=settings)
        return SimulatedPatches.for_training(batches, batches=self.steps, workers=self.workers, epoch=epoch)


def validation_key(grids: np.ndarray, labels: np.ndarray) -> str:
    """A short hash of the validation grids and labels, kept in a checkpoint: a resumed run must validate on the
    same grids, or the ones it trained on would not be the same either (a re-split data set leaks)."""
    digest = hashlib.sha256(np.ascontiguousarray(grids).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def fit_classifier(
    train: tuple[np.ndarray, np.ndarray] | GeneratedGrids,
    val: tuple[np.ndarray, np.ndarray],
    cfg: ClassifierTrainConfig,
    classes: tuple[str, ...],
    *,
    out_path: str | Path,
    resume: bool = False,
    keep_last: bool = False,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> ClassifierOutcome:
    """Train ``cfg``'s classifier on ``train`` = (grids, labels) or on :class:`GeneratedGrids`, validating on
    ``val`` every epoch.

    ``keep_last`` writes every epoch's model to ``out_path`` (a refit on all data, with nothing to validate on).
    Progress values: epoch, epochs (None under a time budget alone), step, steps, loss, val_loss, val_accuracy,
    eta_s; done/total count steps, or seconds when the time budget ends the run first.
    """
    cfg.validate()
    generated = train if isinstance(train, GeneratedGrids) else None
    x_train, y_train = (np.zeros((0, *cfg.model.input_shape)), np.zeros(0)) if generated else train
    x_val, y_val = val
    if generated is None and len(y_train) == 0:
        raise ValueError("no training grids")
    if len(classes) != cfg.model.n_classes:
        raise ValueError(f"{len(classes)} class names for a model of {cfg.model.n_classes} classes")
    out_path = Path(out_path)
    if cfg.model.orientation == "any":  # posed once here (generated ones where they are made)
        report(Progress(0, None, "turning the grids onto their principal axes"))
        x_train, x_val = to_principal_pose(x_train), to_principal_pose(x_val)
    batch_size = cfg.batch_size if generated else min(cfg.batch_size, len(y_train))
    train_grids = None if generated else len(y_train)
    with fit_scope(cfg.seed):
        model = build_classifier(cfg.model)
        model.compile(
            optimizer=make_optimizer(cfg), loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"], jit_compile=jit_compile(),
        )  # fmt: skip
        monitor = "val_loss" if len(y_val) else "loss"
        saved: dict[str, Any] = {}
        validation = validation_key(x_val, y_val)
        if resume:
            saved, _ = resume_checkpoint(model, out_path, load=load_classifier, same_model=partial(_same_model, cfg),
                                         monitor=monitor)  # fmt: skip
            if saved.get("validation", validation) != validation:
                raise ValueError(
                    f"{out_path}: the validation grids differ from those of the run --resume continues (another data "
                    "set, --seed or fraction); its validation and test grids would now be trained on: start a new run"
                )
        epoch = int(saved.get("epoch", 0))
        dataset = generated.dataset(cfg, epoch) if generated else GridBatches(x_train, y_train, cfg, batch_size, epoch)
        max_epochs = cfg.max_epochs
        state = restore_run_state(saved, max_epochs, dataset.num_batches)
        last_path, _ = checkpoint_paths(out_path)

        def save_best(model: keras.Model, state: RunState) -> None:
            extra = {"best_epoch": state.best_epoch, f"best_{monitor}": finite(state.best),
                     "val_accuracy": finite(_value_at(state.history, "val_accuracy", state.best_epoch)),
                     "train_grids": train_grids}  # fmt: skip
            save_classifier(model, out_path, classes=classes, train_config=cfg, extra=extra)

        def save_last(model: keras.Model, state: RunState) -> None:
            save_classifier(model, last_path, classes=classes, train_config=cfg,
                            extra={"training_state": training_state(state, monitor=monitor, validation=validation)},
                            include_optimizer=True)  # fmt: skip
            if keep_last:
                extra = {"epochs": state.epochs_run, "train_grids": train_grids}
                save_classifier(model, out_path, classes=classes, train_config=cfg, extra=extra)

        def report_accuracy(progress: Progress) -> None:
            values = {k: v for k, v in progress.values.items() if k != "val_psnr"}
            values["val_accuracy"] = state.history.get("val_accuracy", [math.nan])[-1]
            if cfg.budget_driven:
                values["epochs"] = None
            report(dataclasses.replace(progress, values=values))

        def out_of_memory() -> str:
            grid = "x".join(map(str, cfg.model.input_shape))
            return (f"out of memory training batches of {batch_size} grids of {grid} voxels; "
                    f"try --batch-size {max(1, batch_size // 2)} ({checkpoint_note(last_path)})")  # fmt: skip

        callbacks: list[keras.callbacks.Callback] = []
        if len(y_val):
            validator = AccuracyValidator(x_val, y_val, batch_size=min(batch_size, 64))
            callbacks.append(ValidationCallback(state, validator, metric="val_accuracy"))
            if cfg.budget_driven:
                callbacks.append(
                    keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
                )
        callbacks.append(ScheduleCallback(state, cfg))
        with dataset.raising_own_errors() if isinstance(dataset, SimulatedPatches) else contextlib.nullcontext():
            reason = run_fit(
                model, dataset, state, monitor=monitor, save_best=save_best, save_last=save_last,
                report=report_accuracy, cancel=cancel, minutes=cfg.minutes, callbacks=callbacks,
                out_of_memory=out_of_memory, budget_only=cfg.budget_driven,
                last_every_s=0.0 if keep_last else LAST_CHECKPOINT_EVERY_S,
            )  # fmt: skip
        history = {k: list(v) for k, v in state.history.items()}
        return ClassifierOutcome(
            history, state.best, _best_accuracy(out_path, history, state.best_epoch), state.best_epoch,
            state.epochs_run, reason, out_path if out_path.exists() else None,
        )  # fmt: skip
