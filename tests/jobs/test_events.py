"""Typed job events: built once from a task's Progress, carried unchanged through the child process."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest

from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken, Progress
from voxelstudio.jobs.events import (
    EVENT_TYPES,
    EpochResult,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobResult,
    Preview,
    PreviewQuality,
    ProgressEvent,
    TileProgress,
    TrainingStep,
    TrialResult,
    as_event,
    dispatch,
)
from voxelstudio.jobs.runner import IsolatedTaskError, run_isolated

NEWS = (
    ProgressEvent(0, None, "loading"),
    TrainingStep(1, 4, "training", epoch=1, epochs=2, step=1, steps=2, loss=0.5, eta_s=3.0),
    EpochResult(2, 4, "validated", epoch=1, epochs=2, step=2, steps=2, loss=0.4, val_loss=0.3, val_psnr=21.5,
                validated=True),
    PreviewQuality(1, 1.8, 1.0),
    TileProgress(2.5, 8, "tiles", tile=2, tiles=4, transform=3, transforms=8),
    TrialResult(2, 3, {"learning_rate": 0.001, "batch_size": 16}, val_accuracy=0.75, val_loss=0.6, epochs_run=4),
)  # fmt: skip


def _fields(event: JobEvent) -> tuple:
    """The event's type and field values, NaN written as a string (NaN is not equal to itself once unpickled)."""
    values = dataclasses.astuple(event)
    return (type(event), *("nan" if isinstance(v, float) and math.isnan(v) else v for v in values))


def report_every_event(count: int, report) -> str:
    """A job (run in the child) that reports each kind of news, a preview and a plain Progress, then returns."""
    for event in NEWS:
        report(event)
    report(Preview(1, np.arange(count, dtype=np.float32).reshape(1, 1, count)))
    report(Progress(3, 4, "validated", {"epoch": np.int64(2), "epochs": 2, "loss": np.float32(0.25),
                                        "epoch_end": True, "validated": True}))  # fmt: skip
    return "done"


def fail(kind: str, report) -> None:
    report(ProgressEvent(1, 2, "about to fail"))
    if kind == "cancel":
        raise Cancelled("training")
    if kind == "memory":
        raise MemoryError
    raise ValueError("the data set folder is empty")


def report_an_end(report) -> None:
    report(JobResult("too early"))


def test_events_round_trip_through_the_child_process():
    received: list[JobEvent] = []
    assert run_isolated(report_every_event, {"count": 5}, report=received.append) == "done"
    assert [_fields(e) for e in received[: len(NEWS)]] == [_fields(e) for e in NEWS]  # same types, same fields
    preview, epoch = received[len(NEWS) :]
    assert isinstance(preview, Preview) and preview.epoch == 1
    np.testing.assert_array_equal(preview.array.ravel(), np.arange(5))
    # a plain Progress from a task below jobs/ became an event in the child, with plain Python numbers
    assert isinstance(epoch, EpochResult) and epoch.validated and epoch.epoch == 2 and epoch.loss == 0.25
    assert type(epoch.epoch) is int and math.isnan(epoch.val_loss)


@pytest.mark.parametrize(
    ("kind", "error", "text"),
    [("value", IsolatedTaskError, "the data set folder is empty"), ("memory", MemoryError, "out of memory"),
     ("cancel", Cancelled, "training")],
)  # fmt: skip
def test_a_failure_or_cancellation_ends_the_job_with_its_event(kind, error, text):
    received: list[JobEvent] = []
    with pytest.raises(error, match=text) as raised:
        run_isolated(fail, {"kind": kind}, report=received.append, cancel=CancelToken())
    assert received == [ProgressEvent(1, 2, "about to fail")]
    if kind == "value":
        assert "ValueError" in raised.value.remote_traceback  # the child's traceback came along


def sleep_then_answer(seconds: float, report) -> str:
    """A task that takes no cancel token: it cannot stop early."""
    report(ProgressEvent(0, 1, "working"))
    time.sleep(seconds)
    return "answer"


def sleep_until_cancelled(cancel) -> str:
    while not cancel.cancelled:
        time.sleep(0.01)
    return "stopped cleanly"  # what training does: stop at the next batch, return the best model so far


def test_stop_ends_a_task_without_a_cancel_token_at_once_and_lets_one_with_a_token_finish():
    token, cancelled_at = CancelToken(), []

    def cancel_on_first_news(event: JobEvent) -> None:
        token.cancel()
        cancelled_at.append(time.monotonic())

    with pytest.raises(Cancelled):
        run_isolated(sleep_then_answer, {"seconds": 30.0}, report=cancel_on_first_news, cancel=token)
    assert time.monotonic() - cancelled_at[0] < 5.0  # not the 30 s of work, nor the grace (its result is not used)

    token = CancelToken()
    token.cancel()
    assert run_isolated(sleep_until_cancelled, {}, report=lambda event: None, cancel=token) == "stopped cleanly"


def test_a_job_cannot_report_its_own_end():
    with pytest.raises(IsolatedTaskError, match="not by reporting JobResult"):
        run_isolated(report_an_end, {}, report=lambda event: None)


def test_progress_becomes_the_event_it_stands_for():
    assert as_event(Progress(1, 2, "loading", {"file": 1})) == ProgressEvent(1.0, 2.0, "loading")
    stage = as_event(Progress(None, None, "measuring where the model puts beads"))  # a stage with no count
    assert stage == ProgressEvent(0.0, None, "measuring where the model puts beads") and stage.fraction is None
    values = {"epoch": 1, "epochs": 3, "step": 2, "steps": 5, "loss": 0.5, "val_loss": math.nan, "eta_s": 7.0}
    step = as_event(Progress(2, 15, "training", values))
    assert type(step) is TrainingStep and (step.epoch, step.step, step.loss, step.eta_s) == (1, 2, 0.5, 7.0)
    assert type(as_event(Progress(5, 15, "validated", values))) is TrainingStep  # the text means nothing
    ended = as_event(Progress(5, 15, "epoch done", {**values, "epoch_end": True, "validated": False}))
    assert type(ended) is EpochResult and not ended.validated
    finished = {**values, "val_loss": 0.4, "val_accuracy": 0.75, "epoch_end": True, "validated": True}
    validated = as_event(Progress(5, 15, "", finished))
    assert validated.validated and validated.val_loss == 0.4 and validated.val_accuracy == 0.75
    assert as_event(validated) is validated  # events pass unchanged


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, JobEvent]] = []

    def on_progress(self, event):
        self.calls.append(("progress", event))

    def on_epoch(self, event):
        self.calls.append(("epoch", event))

    def on_failed(self, event):
        self.calls.append(("failed", event))


def test_dispatch_calls_the_method_of_the_event_type_or_of_its_nearest_base():
    recorder = _Recorder()
    step, epoch = NEWS[1], NEWS[2]
    for event in (NEWS[0], step, epoch, JobFailed("x"), JobCancelled("y"), PreviewQuality(1)):
        dispatch(recorder, event)
    # no on_step: a step is a kind of progress; no on_cancelled or on_preview_quality: ignored
    assert recorder.calls == [("progress", NEWS[0]), ("progress", step), ("epoch", epoch), ("failed", JobFailed("x"))]
    assert len({cls.handler for cls in EVENT_TYPES}) == len(EVENT_TYPES)  # one handler method per event type


def test_a_backend_that_is_not_installed_fails_the_job_in_one_line(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")  # the child inherits it, and checks it before Keras starts
    with pytest.raises(IsolatedTaskError) as raised:
        run_isolated(report_an_end, {}, report=lambda event: None)
    message = str(raised.value)
    assert "KERAS_BACKEND='mxnet' is not a Keras backend; installed backends: " in message and "\n" not in message


def test_a_search_record_becomes_a_trial_result():
    record = {"trial": 2, "learning_rate": 1e-3, "batch_size": 16, "dropout": 0.1, "width": 0.5,
              "val_accuracy": None, "val_loss": None, "epochs_run": 0, "state": "stopped"}  # fmt: skip
    event = TrialResult.from_record(record, trials=5)
    assert (event.trial, event.trials, event.epochs_run, event.state) == (2, 5, 0, "stopped")
    assert event.params == {"learning_rate": 1e-3, "batch_size": 16, "dropout": 0.1, "width": 0.5}
    assert math.isnan(event.val_accuracy) and math.isnan(event.val_loss)


def test_a_tiled_prediction_reports_tile_progress():
    event = as_event(Progress(3, 12, "tiles", {"tile": 3, "tiles": 12}))
    assert isinstance(event, TileProgress) and (event.tile, event.tiles, event.transforms) == (3, 12, 0)
    assert event.describe() == "tile 3/12" and event.handler_name() == "on_tiles"
    tta = as_event(Progress(2.25, 8, "tiles", {"tile": 1, "tiles": 4, "transform": 3, "transforms": 8}))
    assert tta.describe() == "transform 3/8 · tile 1/4" and tta.fraction == pytest.approx(2.25 / 8)
    assert type(as_event(Progress(1, 2, "blocks", {"block": 1}))) is ProgressEvent


def test_eta_clock_counts_from_the_first_fraction():
    from voxelstudio.jobs.eta import EtaClock

    now = [100.0]
    clock = EtaClock(clock=lambda: now[0])
    assert math.isnan(clock.update(0.2)) and math.isnan(clock.update(None))
    now[0] = 100.5
    assert math.isnan(clock.update(0.3))  # under a second: no estimate yet
    now[0] = 110.0
    assert clock.update(0.6) == pytest.approx(10.0 / 0.4 * 0.4)  # 0.4 in 10 s, 0.4 left
    assert math.isnan(clock.update(0.1))  # went back: a new phase, a new estimate
    now[0] = 115.0
    assert clock.update(0.55) == pytest.approx(5.0 / 0.45 * 0.45)
