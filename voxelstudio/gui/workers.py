"""Run a Qt-free task function on a QThread and hand its results back to the GUI thread as signals.

A task is called as ``fn(report=..., cancel=...)``, plus ``preview=...`` when the job asks for previews (bind other
arguments with a closure or functools.partial). The
worker never touches widgets or VTK: it only emits Python objects (numpy results, Progress, JobError), which Qt
queues to the GUI thread because the receiving :class:`Job` lives there.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken, Progress
from voxelstudio.gui.isolation import describe_exception

TaskFn = Callable[..., Any]
ResultHandler = Callable[[Any], object]


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

    progress = Signal(object)
    preview = Signal(object)
    finished = Signal(object)
    errored = Signal(object)

    def __init__(self, name: str, fn: TaskFn, cancel: CancelToken, with_preview: bool) -> None:
        super().__init__()
        self._name, self._fn, self._cancel = name, fn, cancel
        self._with_preview = with_preview

    def report(self, progress: Progress) -> None:
        self.progress.emit(progress)

    @Slot()
    def run(self) -> None:
        try:
            extra = {"preview": self.preview.emit} if self._with_preview else {}
            result = self._fn(report=self.report, cancel=self._cancel, **extra)
        except BaseException as exc:  # the GUI must survive any failure of a task
            self.errored.emit(JobError.from_exception(self._name, exc))
        else:
            self.finished.emit(result)
        finally:
            # Stop this thread's event loop from inside, so Job.wait() never depends on the GUI thread.
            QThread.currentThread().quit()


class Job(QObject):
    """One task on its own QThread. All signals arrive on the GUI thread.

    ``done`` fires once, after ``finished`` or ``errored``, when the thread has stopped: the place to re-enable UI.
    With ``with_preview`` the task also receives ``preview``, a thread-safe callable whose argument arrives on the
    ``preview`` signal (training's live preview).
    """

    progress = Signal(object)
    preview = Signal(object)
    finished = Signal(object)
    errored = Signal(object)
    done = Signal()

    def __init__(self, name: str, fn: TaskFn, *, with_preview: bool = False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.cancel_token = CancelToken()
        self._thread = QThread()
        self._thread.setObjectName(f"voxelstudio-{name}")
        self._worker = _Worker(name, fn, self.cancel_token, with_preview)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self._relay_progress)
        self._worker.preview.connect(self._relay_preview)
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
    def _relay_progress(self, progress: Progress) -> None:
        self.progress.emit(progress)

    @Slot(object)
    def _relay_preview(self, payload: object) -> None:
        self.preview.emit(payload)

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

    A failure inside a result handler counts as a failure of the job. ``busy_changed(False)`` and ``job_ended``
    fire however a job ends, so the UI is always re-enabled.
    """

    busy_changed = Signal(bool)
    job_started = Signal(str)
    job_progress = Signal(str, object)  # job name, Progress
    job_ended = Signal(str, str)  # job name, "finished" | "failed" | "cancelled"
    status = Signal(str)
    failed = Signal(object)  # JobError (never for cancellations)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._active: Job | None = None

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
        on_result: ResultHandler,
        *,
        exclusive: bool = True,
        preview: ResultHandler | None = None,
        then: Callable[[], object] | None = None,
    ) -> Job | None:
        """Run ``fn`` on a new job; ``on_result`` applies its result on the GUI thread and ``then`` runs once a
        successful job has ended. Returns None (and says why) while another exclusive job runs."""
        if exclusive and self._active is not None:
            self.status.emit(f"Wait for {self._active.name} to finish, or stop it first.")
            return None
        job = Job(name, fn, with_preview=preview is not None, parent=self)
        job.progress.connect(lambda progress: self.job_progress.emit(name, progress))
        job.finished.connect(lambda result: self._apply(job, on_result, result))
        job.errored.connect(lambda error: self._on_error(job, error))
        if preview is not None:
            job.preview.connect(lambda payload: self._guarded(job, preview, payload))
        job.done.connect(lambda: self._on_done(job, then))
        self._jobs.append(job)
        if exclusive:
            self._active = job
            self.busy_changed.emit(True)
        self.job_started.emit(name)
        job.start()
        return job

    def stop(self) -> None:
        """Ask the running exclusive job to stop at its next cancel check."""
        if self._active is not None:
            self._active.cancel()
            self.status.emit(f"Stopping {self._active.name}…")

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel every job and wait for its thread; True when all stopped within ``timeout_ms`` each."""
        for job in self._jobs:
            job.cancel()
        return all(job.wait(timeout_ms) for job in list(self._jobs))

    def _apply(self, job: Job, on_result: ResultHandler, result: Any) -> None:
        if self._guarded(job, on_result, result):
            job.outcome = "finished"

    def _guarded(self, job: Job, handler: ResultHandler, payload: Any) -> bool:
        try:
            handler(payload)
        except Exception as exc:
            self._on_error(job, JobError.from_exception(job.name, exc))
            return False
        return True

    def _on_error(self, job: Job, error: JobError) -> None:
        job.outcome = "cancelled" if error.cancelled else "failed"
        if error.cancelled:
            self.status.emit(f"{job.name.capitalize()} stopped.")
        else:
            self.status.emit(f"{job.name.capitalize()} failed: {error.message}")
            self.failed.emit(error)

    def _on_done(self, job: Job, then: Callable[[], object] | None) -> None:
        self._jobs.remove(job)
        if job.outcome == "running":
            job.outcome = "failed"
        if job is self._active:
            self._active = None
            self.busy_changed.emit(False)
        self.job_ended.emit(job.name, job.outcome)
        job.deleteLater()
        if then is not None and job.outcome == "finished":
            then()
