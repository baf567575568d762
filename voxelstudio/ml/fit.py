"""The fit harness every VoxelStudio training run shares, as CSBDeep's ``BaseModel`` is for its models.

The harness owns what a denoiser and a classifier run have in common: the seed and the device/distribution scope
(:func:`fit_scope`), resuming from the last checkpoint (:func:`resume_checkpoint`, :func:`restore_run_state`), the
checkpoint/progress/cancel/time-budget callbacks, out-of-memory errors and why the run stopped (:func:`run_fit`).
The model-specific parts come in as arguments: the model, its dataset, the callbacks that must run first (validation,
learning-rate schedule, early stopping) and the functions that save the best and the last model.

Checkpoints live beside the output: ``<stem>.last.keras`` holds the last epoch with its optimizer state and, in its
metadata, the training state (:func:`training_state`); ``<stem>.last.json`` repeats that state for people and tools.
It is written after the first epoch, at most every ``LAST_CHECKPOINT_EVERY_S`` seconds and when the run ends.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras

from voxelstudio.core.errors import ModelError, VoxelStudioError
from voxelstudio.core.progress import CancelToken, ReportFn
from voxelstudio.ml.backend import is_out_of_memory, quiet_tf_data
from voxelstudio.ml.callbacks import (
    LAST_CHECKPOINT_EVERY_S,
    CancelCallback,
    CheckpointCallback,
    DivergenceCallback,
    ProgressCallback,
    RunState,
    SaveUnsavedAtEnd,
    TimeBudgetCallback,
)
from voxelstudio.ml.device import training_scope
from voxelstudio.ml.persistence import read_members, restore_optimizer_state

SaveFn = Callable[[keras.Model, RunState], None]


class TrainingMemoryError(VoxelStudioError):
    """Training ran out of (GPU) memory; the message says what failed, what to try and whether a checkpoint is kept."""


class TrainingDiverged(VoxelStudioError):
    """The training loss became NaN or infinite; the best model and last checkpoint saved before it are kept."""


def checkpoint_paths(out_path: str | Path) -> tuple[Path, Path]:
    """(last-epoch model, training-state JSON) beside ``out_path``."""
    out_path = Path(out_path)
    stem = out_path.name.removesuffix(".keras")
    return out_path.with_name(f"{stem}.last.keras"), out_path.with_name(f"{stem}.last.json")


def checkpoint_note(checkpoint: Path) -> str:
    """Whether the last checkpoint survives an error, for the error's message."""
    return f"the last checkpoint {checkpoint} is kept" if checkpoint.exists() else "no checkpoint was written yet"


@contextlib.contextmanager
def fit_scope(seed: int, *, mixed_precision: bool = False) -> Iterator[None]:
    """Seed every random generator (Python, numpy, the backend), then build and train inside the device's scope
    (distribution strategy, mixed-precision policy)."""
    keras.utils.set_random_seed(seed)
    with training_scope(mixed_precision=mixed_precision):
        yield


def finite(value: float) -> float | None:
    """``value``, or None when it is NaN or infinite (JSON has neither)."""
    return float(value) if math.isfinite(value) else None


def resume_checkpoint(
    model: keras.Model,
    out_path: str | Path,
    *,
    load: Callable[[Path], Any],
    same_model: Callable[[Any], bool],
    monitor: str,
) -> tuple[dict[str, Any], Any]:
    """Load the last checkpoint beside ``out_path`` into ``model`` (weights and optimizer state).

    ``load(path)`` reads a checkpoint (it has ``.model`` and ``.metadata``); ``same_model(loaded)`` says whether its
    architecture is the one being trained. Returns (the saved training state, the loaded checkpoint); the state's
    best value of ``monitor`` is the best model's at ``out_path`` when that one is newer (see :func:`newer_best`).
    """
    last, _ = checkpoint_paths(out_path)
    if not last.exists():
        raise ModelError(last, "no checkpoint to resume from; train without --resume first")
    loaded = load(last)
    state = loaded.metadata.get("extra", {}).get("training_state")
    if state is None:
        raise ModelError(last, "is not a VoxelStudio training checkpoint")
    if not same_model(loaded):
        problem = "was trained with a different architecture (or pose version)"
        raise ModelError(last, f"{problem}; resume needs the same model config")
    model.set_weights(loaded.model.get_weights())
    restore_optimizer_state(model, last)
    state = dict(state)
    if state.get("monitor", monitor) != monitor:  # e.g. validated before, no validation data now
        warnings.warn(
            f"{last}: the checkpoint kept the best {state['monitor']}, this run has only {monitor}; "
            "the best model so far is chosen afresh",
            stacklevel=2,
        )
        return {**state, "best": None, "best_epoch": None, "monitor": monitor}, loaded
    return newer_best(state, Path(out_path), monitor), loaded


def newer_best(saved: dict[str, Any], out_path: Path, monitor: str) -> dict[str, Any]:
    """``saved`` (a checkpoint's training state) with the best epoch and value of ``monitor`` recorded in the best
    model at ``out_path`` when they are newer: the best model is written at every improvement, the last checkpoint at
    most every ``LAST_CHECKPOINT_EVERY_S`` seconds, so after a crash the best model may be ahead of the checkpoint,
    and a resumed run must not replace it with a worse one."""
    try:
        _, metadata = read_members(out_path)
    except ModelError:
        return saved  # no best model (yet), or a damaged one: the checkpoint's record stands
    extra = metadata.get("extra", {})
    epoch, value = extra.get("best_epoch"), extra.get(f"best_{monitor}")
    if isinstance(epoch, int) and isinstance(value, (int, float)) and epoch > (saved.get("best_epoch") or 0):
        return {**saved, "best_epoch": epoch, "best": float(value)}
    return saved


def restore_run_state(saved: Mapping[str, Any], epochs: int, steps: int) -> RunState:
    """A :class:`RunState` for ``epochs`` of ``steps`` batches that continues the saved training state (a fresh one
    when ``saved`` is empty)."""
    initial_epoch = int(saved.get("epoch", 0))
    state = RunState(epochs, steps, initial_epoch=initial_epoch)
    state.started -= float(saved.get("elapsed_s") or 0.0)  # a time budget and a schedule over it go on, not afresh
    state.history = {k: [math.nan if v is None else v for v in vs] for k, vs in saved.get("history", {}).items()}
    state.best = float(saved["best"]) if saved.get("best") is not None else math.inf
    state.best_epoch = saved.get("best_epoch")
    state.epochs_run = initial_epoch
    return state


def training_state(state: RunState, **extra: Any) -> dict[str, Any]:
    """The JSON-ready training state a checkpoint carries (what :func:`restore_run_state` reads back)."""
    return {
        "epoch": state.epochs_run,
        "best": finite(state.best),
        "best_epoch": state.best_epoch,
        "elapsed_s": round(time.monotonic() - state.started, 3),  # training time so far, earlier sessions included
        **extra,
        "history": {k: [finite(v) for v in vs] for k, vs in state.history.items()},
    }


def run_fit(
    model: keras.Model,
    dataset: keras.utils.PyDataset,
    state: RunState,
    *,
    monitor: str,
    save_best: SaveFn,
    save_last: SaveFn,
    report: ReportFn,
    cancel: CancelToken | None,
    minutes: float | None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    budget_only: bool = False,
    last_every_s: float = LAST_CHECKPOINT_EVERY_S,
    out_of_memory: Callable[[], str] | None = None,
) -> str:
    """Train ``model`` on ``dataset`` from ``state.initial_epoch`` to ``state.epochs``; returns why it stopped:
    "epochs", "time", "early_stopping" or "cancelled". A NaN or infinite loss raises :class:`TrainingDiverged` (the
    best model and last checkpoint on disk are the last good ones). A run resumed with its time budget already
    spent does not train.

    ``callbacks`` run before the harness's own (checkpoint, progress, cancel, time budget), so a validation callback
    among them has filled the epoch's logs when the checkpoint reads them. ``minutes`` ends the run, and the progress
    counts its seconds when it ends the run first, or always with ``budget_only`` (the epochs are only a cap;
    :class:`~voxelstudio.ml.callbacks.ProgressCallback`). The last checkpoint is written at most every
    ``last_every_s`` seconds and when the run ends (:class:`~voxelstudio.ml.callbacks.CheckpointCallback`).
    Out of memory raises :class:`TrainingMemoryError` with ``out_of_memory()``'s advice (the last checkpoint stays).
    """
    checkpoint = CheckpointCallback(
        state, monitor=monitor, save_last=save_last, save_best=save_best, last_every_s=last_every_s
    )
    harness = [
        DivergenceCallback(state),
        checkpoint,
        ProgressCallback(state, report, budget_s=None if minutes is None else minutes * 60.0, budget_only=budget_only),
        CancelCallback(state, cancel),
        TimeBudgetCallback(state, minutes),
    ]
    # a resumed run whose budget is spent ends here (a fresh run trains at least one batch, whatever its budget)
    spent = minutes is not None and state.initial_epoch > 0 and time.monotonic() - state.started >= minutes * 60.0
    if spent:
        state.stopped_reason = "time"
    elif state.initial_epoch < state.epochs:
        quiet_tf_data()
        with warnings.catch_warnings():
            # a cancelled partial epoch is not validated; LR schedules and early stopping then warn needlessly
            warnings.filterwarnings("ignore", message=".*conditioned on metric.*")
            try:
                model.fit(
                    dataset, epochs=state.epochs, initial_epoch=state.initial_epoch,
                    callbacks=[SaveUnsavedAtEnd(checkpoint), *callbacks, *harness], verbose=0,
                )  # fmt: skip
            except Exception as exc:
                if is_out_of_memory(exc):
                    advice = out_of_memory() if out_of_memory is not None else "out of memory while training"
                    raise TrainingMemoryError(advice) from exc
                raise
        # a run stopped mid-epoch leaves the data iterator in a reference cycle; finalise it now, not at exit
        gc.collect()
    if state.diverged:
        kept = "nothing was saved" if state.best_epoch is None else f"the model of epoch {state.best_epoch} is kept"
        raise TrainingDiverged(
            f"training diverged: the loss became NaN or infinite in epoch {state.epoch + 1}, batch {state.step} "
            f"({kept}); lower the learning rate, or check the data for extreme values"
        )
    return state.stopped_reason or ("early_stopping" if state.epochs_run < state.epochs else "epochs")
