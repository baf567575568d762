"""Jobs run task functions off the GUI thread and always end with ``done``."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import numpy as np
import pytest

from voxelstudio.core.errors import VolumeReadError
from voxelstudio.core.progress import Progress
from voxelstudio.gui.workers import Job, JobError
from voxelstudio.jobs.events import Preview, PreviewQuality, ProgressEvent

pytestmark = pytest.mark.gui


def _run(qtbot, job: Job, signal_name: str):
    with qtbot.waitSignal(job.done, timeout=10_000), qtbot.waitSignal(getattr(job, signal_name)) as blocker:
        job.start()
    assert not job.running
    return blocker.args[0]


def test_result_and_progress_arrive_on_the_gui_thread(qtbot):
    seen_threads = []

    def task(report, cancel):
        seen_threads.append(threading.current_thread())
        for i in range(3):
            report(Progress(i + 1, 3))
        return 42

    job = Job("count", task)
    progress = []
    job.reported.connect(lambda e: progress.append((e, threading.current_thread())))
    assert _run(qtbot, job, "finished") == 42
    assert seen_threads[0] is not threading.main_thread()
    assert [event for event, _ in progress] == [ProgressEvent(1, 3), ProgressEvent(2, 3), ProgressEvent(3, 3)]
    assert all(thread is threading.main_thread() for _, thread in progress)


def test_errors_become_one_line_messages_with_details(qtbot):
    def task(report, cancel):
        raise VolumeReadError("bad.mat", "not a MATLAB file")

    error = _run(qtbot, Job("load", task), "errored")
    assert isinstance(error, JobError)
    assert error.message == "bad.mat: not a MATLAB file"
    assert "Traceback" in error.details and not error.cancelled


def test_unexpected_errors_and_memory_errors_are_readable(qtbot):
    def task(report, cancel):
        raise MemoryError

    error = _run(qtbot, Job("denoise", task), "errored")
    assert error.message.startswith("out of memory")
    assert JobError.from_exception("x", KeyError("k")).message == "unexpected KeyError: 'k'"


def test_cancel_stops_a_polling_task(qtbot):
    started = threading.Event()

    def task(report, cancel):
        started.set()
        while True:
            cancel.raise_if_cancelled("training")
            time.sleep(0.01)

    job = Job("train", task)
    with qtbot.waitSignal(job.errored, timeout=10_000) as blocker:
        job.start()
        assert started.wait(5)
        job.cancel()
    assert blocker.args[0].cancelled
    assert job.wait(5000)


def test_reported_events_arrive_unchanged(qtbot):
    frame = np.ones((2, 2, 2), np.float32)

    def task(report, cancel):
        report(Preview(1, frame))
        report(PreviewQuality(1, 1.5, 1.0))

    job = Job("train", task)
    events = []
    job.reported.connect(events.append)
    with qtbot.waitSignal(job.done, timeout=10_000):
        job.start()
    assert events[0].array is frame and events[1] == PreviewQuality(1, 1.5, 1.0)


def test_an_ended_job_and_what_its_task_held_are_freed(qtbot):
    """A finished job is deleted with its thread, worker and the task's closure (a Qt signal named ``event`` once
    shadowed QObject.event() and kept every job, and the volumes its task held, alive)."""
    from PySide6.QtCore import QCoreApplication, QEvent

    from voxelstudio.gui.workers import JobRunner

    runner = JobRunner()
    held = np.zeros(8)

    class Handler:
        def on_result(self, result):
            pass

    job = runner.start("hold", lambda report, cancel: held.sum(), Handler())
    job_ref, task_ref = weakref.ref(job), weakref.ref(job._worker._fn)
    del job
    qtbot.waitUntil(lambda: not runner.has_jobs, timeout=10_000)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    assert job_ref() is None and task_ref() is None


def test_a_failed_job_is_undone_before_its_error_box_can_run_an_event_loop(qtbot):
    """The handler hears of the failure first: a receiver of ``failed`` that runs a nested event loop (as a modal
    box's exec() does) lets the job's thread end and its handler be dropped meanwhile, which once skipped the undo
    and put "unexpected KeyError" in the status line."""
    from PySide6.QtCore import QEventLoop, QTimer

    from voxelstudio.gui.workers import JobRunner

    runner = JobRunner()
    seen, statuses = [], []
    runner.status.connect(statuses.append)

    class Handler:
        def on_failed(self, event):
            seen.append(("undone", event.message))

        def on_ended(self, outcome):
            seen.append(("ended", outcome))

    def modal_box(error):
        loop = QEventLoop()
        runner.all_done.connect(loop.quit)
        QTimer.singleShot(10_000, loop.quit)
        loop.exec()
        seen.append(("box closed", error.message))

    def fail(report, cancel):
        raise ValueError("the GPU fell over")

    runner.failed.connect(modal_box)
    runner.start("training", fail, Handler())
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=15_000)
    assert seen == [("undone", "the GPU fell over"), ("ended", "failed"), ("box closed", "the GPU fell over")]
    assert statuses == ["Training failed: the GPU fell over"]


def test_the_error_box_opens_without_blocking(qtbot):
    from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

    from voxelstudio.gui import dialogs

    parent = QWidget()
    qtbot.addWidget(parent)
    parent.show()
    box = dialogs.show_error(parent, "Training failed", "the GPU fell over", "Traceback ...")
    assert isinstance(box, QMessageBox)  # returned at once: exec() would still be waiting for a click
    qtbot.waitUntil(box.isVisible, timeout=5_000)
    assert box.text() == "the GPU fell over" and box.detailedText() == "Traceback ..."
    box.close()
    qtbot.waitUntil(lambda: not any(isinstance(w, QMessageBox) for w in QApplication.topLevelWidgets()), timeout=5_000)


def test_once_all_jobs_are_cancelled_for_closing_nothing_new_starts(qtbot):
    from PySide6.QtCore import QCoreApplication, QEvent

    from voxelstudio.gui.workers import JobRunner

    class Handler:
        def on_result(self, result):
            pass

    runner = JobRunner()
    release, followed = threading.Event(), []
    runner.start("denoising", lambda report, cancel: release.wait(10), Handler(), then=lambda: followed.append(1))
    with qtbot.waitSignal(runner.all_done, timeout=10_000):
        runner.cancel_all()  # the window is closing
        assert runner.start("reading a slice", lambda report, cancel: None, Handler(), exclusive=False) is None
        release.set()  # the denoise finished its work all the same
    assert followed == []  # what it would have started (metrics) does not start
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # the ended job goes before its runner
