"""Keras callbacks that connect a fit loop to VoxelStudio's report/cancel contract and checkpoints.

All of them share one :class:`RunState`, which records why training stopped and what the epochs produced. Keras 3
checks ``model.stop_training`` after every batch, so setting it in ``on_train_batch_end`` stops within one batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from voxelstudio.core.progress import CancelToken, Progress, ReportFn

LAST_CHECKPOINT_EVERY_S = 30.0
"""How often at most the last checkpoint is written while a run goes on (see :class:`CheckpointCallback`)."""


@dataclass
class RunState:
    """Mutable bookkeeping of one training run, shared by the callbacks."""

    epochs: int
    steps: int
    initial_epoch: int = 0
    stopped_reason: str | None = None
    epoch: int = 0
    step: int = 0
    steps_done: int = 0
    best: float = math.inf
    best_epoch: int | None = None
    epochs_run: int = 0
    history: dict[str, list[Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def diverged(self) -> bool:
        """The loss became NaN or infinite: the weights in memory are lost (:class:`DivergenceCallback`)."""
        return self.stopped_reason == "diverged"

    @property
    def skip_epoch_end(self) -> bool:
        """A cancelled partial epoch is not validated once a checkpoint exists (stop fast; see
        :class:`CheckpointCallback` for when it is saved); a diverged one never is (nor saved)."""
        return self.diverged or (self.stopped_reason == "cancelled" and self.best_epoch is not None)

    def record(self, logs: dict[str, Any]) -> None:
        for key, value in logs.items():
            if isinstance(value, (int, np.integer)):
                self.history.setdefault(key, []).append(int(value))
            elif isinstance(value, (float, np.floating)):
                self.history.setdefault(key, []).append(float(value))


def run_shares(
    done: int, total: int, elapsed_s: float, budget_s: float | None, *, budget_only: bool = False
) -> tuple[float, float]:
    """(share of the run's ``total`` batches done, share of its time budget used); 0 for a bound the run does not
    have: no budget, or an epoch count that is only a cap (``budget_only``). The larger one is how far the run is."""
    by_steps = 0.0 if budget_only else done / max(total, 1)
    by_time = 0.0 if budget_s is None else elapsed_s / budget_s
    return by_steps, by_time


class ProgressCallback(keras.callbacks.Callback):
    """Reports Progress(done=epoch*steps+step, total=epochs*steps, values={epoch, step, loss, val_loss, eta_s, ...}).

    Under a time budget (``budget_s``) whose elapsed share is ahead of the batches' share (the budget ends the run
    first), or that alone ends the run (``budget_only``: the epoch count is only a cap), done/total count the
    budget's seconds instead; ``eta_s`` is capped by what is left of the budget.
    """

    def __init__(
        self,
        state: RunState,
        report: ReportFn,
        *,
        budget_s: float | None = None,
        budget_only: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.state = state
        self.report = report
        self.budget_s = budget_s
        self.budget_only = budget_only
        self.clock = clock
        self.last_loss = math.nan

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.state.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.state.step = batch + 1
        self.state.steps_done += 1
        self.last_loss = float((logs or {}).get("loss", math.nan))
        self._emit("training")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        validated = "val_loss" in (logs or {})
        self._emit("validated" if validated else "epoch done", epoch_end=True, validated=validated)

    def _emit(self, message: str, *, epoch_end: bool = False, validated: bool = False) -> None:
        """Report progress; ``epoch_end`` and ``validated`` travel as values (jobs read them, never the text)."""
        state = self.state
        done = state.epoch * state.steps + state.step
        total = state.epochs * state.steps
        elapsed = self.clock() - state.started
        remaining = max(total - done, 0)
        eta = elapsed / state.steps_done * remaining if state.steps_done else math.nan
        if self.budget_s is not None:
            left = max(self.budget_s - elapsed, 0.0)
            eta = min(eta, left) if math.isfinite(eta) else left
            # shares, not ETAs: a resumed run's batches include its earlier epochs, its clock only this session
            by_steps, by_time = run_shares(done, total, elapsed, self.budget_s, budget_only=self.budget_only)
            if by_time >= by_steps:  # the budget ends the run first: count its seconds
                done, total = min(round(elapsed), round(self.budget_s)), round(self.budget_s)
        history = state.history
        values = {
            "epoch": state.epoch + 1,
            "epochs": state.epochs,
            "step": state.step,
            "steps": state.steps,
            "loss": self.last_loss,
            "val_loss": history.get("val_loss", [math.nan])[-1],
            "val_psnr": history.get("val_psnr", [math.nan])[-1],
            "eta_s": eta,
            "epoch_end": epoch_end,
            "validated": validated,
        }
        self.report(Progress(done, total, message, values))


class DivergenceCallback(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite (stopped_reason "diverged", which
    :func:`~voxelstudio.ml.fit.run_fit` raises): its weights are not validated or saved, so the best model and the
    last checkpoint on disk stay the last good ones."""

    def __init__(self, state: RunState) -> None:
        super().__init__()
        self.state = state

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.state.stopped_reason = "diverged"
            self.model.stop_training = True


class CancelCallback(keras.callbacks.Callback):
    """Stops training at the end of the batch during which ``cancel`` was set."""

    def __init__(self, state: RunState, cancel: CancelToken | None) -> None:
        super().__init__()
        self.state = state
        self.cancel = cancel

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.cancel is not None and self.cancel.cancelled:
            if self.state.stopped_reason is None:  # a divergence in the same batch stays what ended the run
                self.state.stopped_reason = "cancelled"
            self.model.stop_training = True


class TimeBudgetCallback(keras.callbacks.Callback):
    """Stops training when ``minutes`` of wall-clock time are up or the next batch, and the epoch's end that follows
    a stop (validation, preview, checkpoint), would end after them; checked after every batch and every epoch. The
    estimate is the last batch's duration, from the second batch on (the first one includes tracing and compiling),
    plus the last epoch end's. Must come last among the callbacks, so an epoch's end is timed whole."""

    def __init__(self, state: RunState, minutes: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.state = state
        self.seconds = None if minutes is None else minutes * 60.0
        self.clock = clock
        self.batch_started: float | None = None
        self.batch_ended: float | None = None
        self.batches = 0
        self.batch_s = 0.0
        self.epoch_end_s = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.batch_started = self.clock()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.batches += 1
        now = self.batch_ended = self.clock()
        self.batch_s = now - self.batch_started if self.batch_started is not None and self.batches > 1 else 0.0
        self._stop_if_over(now, self.batch_s + self.epoch_end_s)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = self.clock()
        if self.batch_ended is not None:
            self.epoch_end_s = now - self.batch_ended
        self._stop_if_over(now, self.batch_s + self.epoch_end_s)  # one more batch would bring another epoch end

    def _stop_if_over(self, now: float, estimate: float) -> None:
        if self.seconds is not None and now - self.state.started + estimate >= self.seconds:
            if self.state.stopped_reason is None:
                self.state.stopped_reason = "time"
            self.model.stop_training = True


class ValidationCallback(keras.callbacks.Callback):
    """Adds ``val_loss`` and ``val_psnr`` to the epoch logs from ``validate(model) -> (loss, psnr, preview)``.

    Must come first in the callback list so later callbacks (LR schedule, early stopping, checkpoints) see the
    values (a NaN loss, when there is nothing to validate, is left out). ``on_preview(epoch, prediction)`` is called
    every ``preview_every`` epochs (1-based) with the first validation volume's prediction, and only as often as
    keeps previews within ``preview_share`` of the time: after one that took d seconds, none for d/share - d seconds
    (short epochs of a slow model would otherwise spend their time previewing). ``metric`` names the log key of the
    second value (a classifier passes ``"val_accuracy"``).
    """

    def __init__(
        self,
        state: RunState,
        validate: Callable[[keras.Model, bool], tuple[float, float, np.ndarray | None]],
        *,
        on_preview: Callable[[int, np.ndarray], None] | None = None,
        preview_every: int = 1,
        preview_share: float = 1.0,
        metric: str = "val_psnr",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if not 0.0 < preview_share <= 1.0:
            raise ValueError(f"preview_share must be in (0, 1], got {preview_share:g}")
        self.state = state
        self.validate = validate
        self.metric = metric
        self.on_preview = on_preview
        self.preview_every = max(int(preview_every), 1)
        self.preview_share = preview_share
        self.clock = clock
        self.next_preview = -math.inf

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        if self.state.skip_epoch_end:
            return
        started = self.clock()
        want_preview = (
            self.on_preview is not None and (epoch + 1) % self.preview_every == 0 and started >= self.next_preview
        )
        loss, psnr, preview = self.validate(self.model, want_preview)
        if math.isfinite(loss):
            logs["val_loss"] = loss
            logs[self.metric] = psnr
        if want_preview and preview is not None and self.on_preview is not None:
            self.on_preview(epoch + 1, preview)
            ended = self.clock()
            self.next_preview = ended + (ended - started) * (1.0 / self.preview_share - 1.0)


class CheckpointCallback(keras.callbacks.Callback):
    """Each validated epoch: records history, saves the best model by ``monitor`` and the last checkpoint.

    The best model is saved at every improvement. The last checkpoint (with the optimizer state: the costlier write)
    is saved after the first epoch, then at most every ``last_every_s`` seconds and on the epoch that ends the run,
    so short epochs (a GPU's, or adapt's 4 batches) do not spend their time writing files; a crash loses at most
    ``last_every_s`` seconds and an epoch. A cancelled partial epoch saves it only when whole epochs went unsaved
    (with the weights as they are, counted as the last whole epoch). ``save_last(model, state)`` and
    ``save_best(model, state)`` write atomically (see training.py).
    """

    def __init__(
        self,
        state: RunState,
        *,
        monitor: str,
        save_last: Callable[[keras.Model, RunState], None],
        save_best: Callable[[keras.Model, RunState], None],
        last_every_s: float = LAST_CHECKPOINT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.state = state
        self.monitor = monitor
        self.save_last = save_last
        self.save_best = save_best
        self.last_every_s = last_every_s
        self.clock = clock
        self.last_saved = -math.inf
        self.saved_epochs = state.initial_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        state = self.state
        if state.skip_epoch_end:  # cancelled mid-epoch (before any restore of best weights at the train's end)
            if state.epochs_run > self.saved_epochs and not state.diverged:
                self._save_last()
            return
        logs = dict(logs or {})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["epoch"] = epoch + 1
        state.record(logs)
        state.epochs_run = epoch + 1
        value = float(logs.get(self.monitor, math.nan))
        improved = math.isfinite(value) and value < state.best
        if improved or state.best_epoch is None:
            state.best = value if math.isfinite(value) else state.best
            state.best_epoch = epoch + 1
            self.save_best(self.model, state)
        ending = self.model.stop_training or state.stopped_reason is not None or state.epochs_run >= state.epochs
        if ending or self.clock() - self.last_saved >= self.last_every_s:
            self._save_last()

    def save_unsaved(self) -> None:
        """Save the last checkpoint if epochs went unsaved: a run ended by a check after this callback's epoch end
        (the time budget's). Called by :class:`SaveUnsavedAtEnd`, before early stopping restores the best weights."""
        if self.state.epochs_run > self.saved_epochs and not self.state.diverged:
            self._save_last()

    def _save_last(self) -> None:
        self.save_last(self.model, self.state)
        self.last_saved = self.clock()
        self.saved_epochs = self.state.epochs_run


class SaveUnsavedAtEnd(keras.callbacks.Callback):
    """Saves what ``checkpoint`` left unsaved when training ends. Goes first in the callback list: Keras calls
    ``on_train_end`` in list order, and early stopping's restores the best weights over the last epoch's."""

    def __init__(self, checkpoint: CheckpointCallback) -> None:
        super().__init__()
        self.checkpoint = checkpoint

    def on_train_end(self, logs: dict | None = None) -> None:
        self.checkpoint.save_unsaved()
