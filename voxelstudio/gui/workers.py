"""Run a Qt-free task function on a QThread and hand its news back to the GUI thread as typed job events.

A task is called as ``fn(report=..., cancel=...)`` (bind other arguments with a closure or functools.partial).
Whatever it reports (a Progress, or a :mod:`~voxelstudio.jobs.events` event, as isolated jobs forward them) becomes
an event; the worker never touches widgets or VTK: it only emits Python objects (events, numpy results, JobError),
which Qt queues to the GUI thread because the receiving :class:`Job` lives there. The :class:`JobRunner` hands each
event to the job's handler (:mod:`voxelstudio.gui.job_handlers`).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken, Progress
from voxelstudio.jobs.events import JobCancelled, JobEvent, JobFailed, JobResult, as_event, dispatch
from voxelstudio.jobs.runner import describe_exception

TaskFn = Callable[..., Any]


@dataclass(frozen=True)
class JobError:
    """A failed job, ready for a dialog: a one-line message and the traceback as details."""

    job: str
    message: str
    details: str
    cancelled: bool = False

    @classmethod
    def from_exception(cls, job: str, exc: BaseException) -> JobError:
        details = "".join(traceback.format_exception(exc))
        remote = getattr(exc, "remote_traceback", "")
        if remote:
            details = f"{remote}\nReported in the window by:\n{details}"
        if isinstance(exc, Cancelled):
            return cls(job, str(exc), details, cancelled=True)
        return cls(job, describe_exception(exc), details)


class _Worker(QObject):
    """Lives on the job's thread; calls the task once and emits what happened."""

    reported = Signal(object)  # not ``event``: that would shadow QObject.event() and leak a reference per Qt event
    finished = Signal(object)
    errored = Signal(object)

    def __init__(self, name: str, fn: TaskFn, cancel: CancelToken) -> None:
        super().__init__()
        self._name, self._fn, self._cancel = name, fn, cancel

    def report(self, news: Progress | JobEvent) -> None:
        self.reported.emit(as_event(news))

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(report=self.report, cancel=self._cancel)
        except BaseException as exc:  # the GUI must survive any failure of a task
            self.errored.emit(JobError.from_exception(self._name, exc))
        else:
            self.finished.emit(result)
        finally:
            # Stop this thread's event loop from inside, so Job.wait() never depends on the GUI thread.
            QThread.currentThread().quit()


class Job(QObject):
    """One task on its own QThread. All signals arrive on the GUI thread.

    ``reported`` carries each :mod:`~voxelstudio.jobs.events` event the task reported. ``done`` fires once, after
    ``finished`` or ``errored``, when the thread has stopped: the place to re-enable UI.
    """

    reported = Signal(object)
    finished = Signal(object)
    errored = Signal(object)
    done = Signal()

    def __init__(
        self, name: str, fn: TaskFn, *, exclusive: bool = True, stoppable: bool = True, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.name, self.exclusive, self.stoppable = name, exclusive, stoppable
        self.cancel_token = CancelToken()
        self._thread = QThread()
        self._thread.setObjectName(f"voxelstudio-{name}")
        self._worker = _Worker(name, fn, self.cancel_token)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.reported.connect(self._relay_event)
        self._worker.finished.connect(self._relay_finished)
        self._worker.errored.connect(self._relay_errored)
        self._thread.finished.connect(self._on_thread_finished)
        self._running = False
        self.outcome = "running"  # the owner records "finished", "failed" or "cancelled"

    def start(self) -> None:
        self._running = True
        self._thread.start()

    def cancel(self) -> None:
        """Ask the task to stop at its next check of the cancel token."""
        self.cancel_token.cancel()

    @property
    def running(self) -> bool:
        return self._running

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until the thread has stopped (True) or ``timeout_ms`` passed (False); -1 waits forever."""
        if not self._thread.isRunning():
            return True
        return self._thread.wait() if timeout_ms < 0 else self._thread.wait(timeout_ms)

    @Slot(object)
    def _relay_event(self, event: JobEvent) -> None:
        self.reported.emit(event)

    @Slot(object)
    def _relay_finished(self, result: object) -> None:
        self.finished.emit(result)

    @Slot(object)
    def _relay_errored(self, error: JobError) -> None:
        self.errored.emit(error)

    @Slot()
    def _on_thread_finished(self) -> None:
        self._running = False
        self.done.emit()


class JobRunner(QObject):
    """Starts jobs and keeps them alive until their threads stop; at most one *exclusive* job at a time.

    Each job has a handler (see :mod:`voxelstudio.gui.job_handlers`) that receives ``on_started``, every event,
    its result as a JobResult, a JobFailed or JobCancelled, and ``on_ended`` last. A failure inside a handler counts
    as a failure of the job. ``busy_changed(False)`` and ``job_ended`` fire however a job ends, so the UI is always
    re-enabled.
    """

    busy_changed = Signal(bool)
    job_started = Signal(object)  # Job
    job_event = Signal(object)  # every event of the exclusive jobs, for the window's job bar
    job_ended = Signal(str, str)  # job name (for a status line), "finished" | "failed" | "cancelled"
    status = Signal(str)
    failed = Signal(object)  # JobError (never for cancellations)
    all_done = Signal()  # the last running job has ended

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._active: Job | None = None
        self._handlers: dict[Job, object] = {}
        self._closing = False  # cancel_all was called: the window is going, no job starts any more

    @property
    def busy(self) -> bool:
        return self._active is not None

    @property
    def active_name(self) -> str | None:
        return None if self._active is None else self._active.name

    def start(
        self,
        name: str,
        fn: TaskFn,
        handler: object,
        *,
        exclusive: bool = True,
        stoppable: bool = True,
        then: Callable[[], object] | None = None,
    ) -> Job | None:
        """Run ``fn`` on a new job whose events go to ``handler`` on the GUI thread (``name`` only words status
        lines); ``then`` runs once a successful job has ended. ``handler`` may be a function returning the handler,
        called only when the job starts (so a shared handler is prepared only for a run that happens). A job that is
        not ``stoppable`` (a short task that never checks its cancel token) is not offered a Stop. Returns None (and
        says why) while another exclusive job runs."""
        if self._closing:
            return None
        if exclusive and self._active is not None:
            self.status.emit(f"Wait for {self._active.name} to finish, or stop it first.")
            return None
        job = Job(name, fn, exclusive=exclusive, stoppable=stoppable, parent=self)
        self._handlers[job] = handler() if callable(handler) else handler
        job.reported.connect(lambda event: self._deliver(job, event))
        job.finished.connect(lambda result: self._apply(job, result))
        job.errored.connect(lambda error: self._on_error(job, error))
        job.done.connect(lambda: self._on_done(job, then))
        self._jobs.append(job)
        if exclusive:
            self._active = job
            self.busy_changed.emit(True)
        self.job_started.emit(job)
        self._call(job, "on_started")
        job.start()
        return job

    @property
    def can_stop(self) -> bool:
        """Whether an exclusive job runs and Stop would stop it."""
        return self._active is not None and self._active.stoppable

    def stop(self) -> None:
        """Ask the running exclusive job to stop at its next cancel check (a job that cannot stop just ends)."""
        if self._active is None:
            return
        if not self._active.stoppable:
            self.status.emit(f"{self._active.name.capitalize()} cannot be stopped; it ends on its own in a moment.")
            return
        self._active.cancel()
        self.status.emit(f"Stopping {self._active.name}…")

    @property
    def has_jobs(self) -> bool:
        """Whether any job (exclusive or not) is still running."""
        return bool(self._jobs)

    def cancel_all(self) -> None:
        """Ask every job to stop, without waiting, and start no more (the window is closing: what a job's end would
        start, metrics after a denoise or the next slice plane, is not wanted); ``all_done`` fires when the last one
        has ended."""
        self._closing = True
        for job in self._jobs:
            job.cancel()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel every job and wait for its thread; True when all stopped within ``timeout_ms`` each."""
        for job in self._jobs:
            job.cancel()
        return all(job.wait(timeout_ms) for job in list(self._jobs))

    def _deliver(self, job: Job, event: JobEvent) -> bool:
        """Hand ``event`` to the job's handler; a handler's failure fails the job (False)."""
        if job.outcome != "running":
            return False  # a failed handler ended the job for the window
        if job.exclusive:  # background reads (device probe, slice planes) leave the job bar to the running job
            self.job_event.emit(event)
        try:
            dispatch(self._handlers[job], event)
        except Exception as exc:
            self._on_error(job, JobError.from_exception(job.name, exc))
            return False
        return True

    def _call(self, job: Job, method: str, *args: Any) -> None:
        function = getattr(self._handlers.get(job), method, None)
        if function is not None:
            function(*args)

    def _apply(self, job: Job, result: Any) -> None:
        if self._deliver(job, JobResult(result)):
            job.outcome = "finished"

    def _on_error(self, job: Job, error: JobError) -> None:
        if job.outcome != "running":
            return
        job.outcome = "cancelled" if error.cancelled else "failed"
        event: JobEvent = JobCancelled(error.message) if error.cancelled else JobFailed(error.message, error.details)
        # The handler undoes the run first: whatever ``failed`` starts (an error box) may run a nested event loop,
        # in which the job's thread can end and _on_done drop its handler.
        try:
            dispatch(self._handlers[job], event)
            ended = f"{job.name.capitalize()} {'stopped.' if error.cancelled else f'failed: {error.message}'}"
        except Exception as exc:  # undoing a failed run must not take the window down; the dialog is shown
            ended = f"{job.name.capitalize()} failed: {JobError.from_exception(job.name, exc).message}"
        self.status.emit(ended)
        if not error.cancelled:
            self.failed.emit(error)

    def _on_done(self, job: Job, then: Callable[[], object] | None) -> None:
        self._jobs.remove(job)
        if job.outcome == "running":
            job.outcome = "failed"
        if job is self._active:
            self._active = None
            self.busy_changed.emit(False)
        handler = self._handlers.pop(job, None)
        self.job_ended.emit(job.name, job.outcome)
        ended = getattr(handler, "on_ended", None)
        if ended is not None:
            ended(job.outcome)
        job.deleteLater()
        if then is not None and job.outcome == "finished" and not self._closing:
            then()
        if not self._jobs:
            self.all_done.emit()
