"""Run a task function in a child Python process, with the same ``report``/``cancel`` contract as in-process.

Why a process and not only a thread: TensorFlow ships its own copy of LLVM, and Mesa's OpenGL drivers (llvmpipe, the
software renderer used under Xvfb, in VMs and remote desktops, and AMD's radeonsi) load the system libLLVM. With both
in one process, whichever loads second crashes the process in LLVM's static initialisers. So every job that imports
TensorFlow (training, denoising, the device probe, model checks) runs in a child process. It also means a crash or an
out-of-memory kill inside a job cannot take the window down, and the GUI thread never waits on TensorFlow's GIL.

This module is Qt-free: the child imports it (and the task) but never Qt or VTK. Children are started with
multiprocessing's "spawn" method, so, as for any multiprocessing program, a script that opens the VoxelStudio window
itself must keep its top-level code under ``if __name__ == "__main__":`` (``voxelstudio`` and ``python -m
voxelstudio`` already do).
"""

from __future__ import annotations

import contextlib
import inspect
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.errors import Cancelled, VoxelStudioError, message_of
from voxelstudio.core.progress import CancelToken, Progress
from voxelstudio.core.volume import Volume
from voxelstudio.jobs.events import JobCancelled, JobEvent, JobFailed, JobResult, Preview, as_event

EventFn = Callable[[JobEvent], None]

POLL_S = 0.05
CHILD_NICENESS = 5
CANCEL_GRACE_S = 20.0
"""How long a cancelled child whose task takes a cancel token may take to stop cleanly (training saves its best
model) before it is killed; a task without one is ended at once."""


def _rebuild_volume(data: np.ndarray, spacing, name: str, source, metadata: dict) -> Volume:
    return Volume(data, spacing=spacing, name=name, source=source, metadata=metadata)


def _reduce_volume(volume: Volume):
    return _rebuild_volume, (volume.data, volume.spacing, volume.name, volume.source, dict(volume.metadata))


ForkingPickler.register(Volume, _reduce_volume)  # Volume's read-only metadata mapping does not pickle by itself


def describe_exception(exc: BaseException) -> str:
    """One readable line for a dialog."""
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller volume, a smaller patch or batch size, or more tiles"
    text = message_of(exc)
    if isinstance(exc, (VoxelStudioError, OSError, ValueError)):
        return text or type(exc).__name__
    return f"unexpected {type(exc).__name__}: {text}"


class IsolatedTaskError(VoxelStudioError):
    """A task failed in its worker process; ``remote_traceback`` is the child's traceback."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback


def run_isolated(
    function: Callable[..., Any],
    kwargs: Mapping[str, Any],
    *,
    report: EventFn,
    cancel: CancelToken | None = None,
) -> Any:
    """Call ``function`` (a module-level function, sent by reference) with ``kwargs`` in a fresh process and
    return its result. ``report`` and ``cancel`` are passed on only if the function takes them.

    ``report`` receives the child's news as :mod:`~voxelstudio.jobs.events` dataclasses (what the task reported,
    turned into events in the child by :func:`~voxelstudio.jobs.events.as_event`, previews included); ``cancel`` is
    forwarded to the child's own CancelToken. The child ends with a JobResult, JobFailed or JobCancelled event, which
    this function returns or raises as Cancelled, MemoryError or IsolatedTaskError (message and child traceback);
    IsolatedTaskError also when the process died (for example killed for lack of memory).
    """
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    stop = context.RawValue("b", 0)  # a plain shared flag: an Event can hang its setter if the child died
    child = context.Process(
        target=_child_main,
        args=(function, dict(kwargs), messages, stop),
        name=f"voxelstudio-{function.__name__}",
        daemon=True,
    )
    child.start()
    cancelled_at: float | None = None
    # a task that takes no cancel token has nothing to finish cleanly: Stop ends it at once, and its result is not used
    grace_s = CANCEL_GRACE_S if "cancel" in inspect.signature(function).parameters else 0.0
    try:
        while True:
            if cancel is not None and cancel.cancelled and cancelled_at is None:
                stop.value = 1
                cancelled_at = time.monotonic()
            if cancelled_at is not None and time.monotonic() - cancelled_at >= grace_s:
                raise Cancelled(function.__name__)
            try:
                event = messages.get(timeout=POLL_S)
            except queue.Empty:
                if child.is_alive():
                    continue
                try:  # the child may have exited just after its last message was sent
                    event = messages.get(timeout=1.0)
                except queue.Empty:
                    raise _died(child.exitcode) from None
            if isinstance(event, JobResult):
                return event.value
            if isinstance(event, (JobFailed, JobCancelled)):
                raise _rebuild_error(event)
            report(event)
    finally:
        stop.value = 1
        child.join(timeout=0.0 if cancelled_at is not None and not grace_s else 5.0)  # a task without a token: now
        if child.is_alive():
            child.terminate()
            child.join(timeout=5.0)
        messages.close()
        messages.cancel_join_thread()


def _died(exitcode: int | None) -> IsolatedTaskError:
    hint = "; it was probably out of memory" if exitcode in (-9, 137) else ""
    return IsolatedTaskError(f"the worker process stopped unexpectedly (exit code {exitcode}){hint}")


def _rebuild_error(event: JobFailed | JobCancelled) -> BaseException:
    if isinstance(event, JobCancelled):
        return Cancelled(event.message.removesuffix(" cancelled"))
    if event.out_of_memory:
        return MemoryError(event.message)
    return IsolatedTaskError(event.message, event.details)


def failure_event(exc: BaseException) -> JobFailed | JobCancelled:
    """The event that says how a job ended with ``exc`` (call it inside the ``except`` block: it keeps the
    traceback)."""
    if isinstance(exc, Cancelled):
        return JobCancelled(str(exc))
    return JobFailed(describe_exception(exc), traceback.format_exc(), out_of_memory=isinstance(exc, MemoryError))


def _child_main(function: Callable[..., Any], kwargs: dict[str, Any], messages, stop) -> None:
    """Runs in the child: call the task, send its news as events, end with the result or the failure event."""
    import voxelstudio.ml  # noqa: F401  # its TensorFlow settings first (oneDNN, and the log level that goes with it)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)  # the window stays responsive while the job uses every core
    from voxelstudio.ml.quiet_start import start_backend_quietly

    token = CancelToken()
    threading.Thread(target=_watch_stop_flag, args=(stop, token), daemon=True).start()
    try:
        start_backend_quietly()  # KERAS_BACKEND checked (one line if not usable); TF's start-up lines hidden
        accepted = inspect.signature(function).parameters
        extra: dict[str, Any] = {}
        if "report" in accepted:
            extra["report"] = lambda news: messages.put(_plain(_news(news)))
        if "cancel" in accepted:
            extra["cancel"] = token
        result = function(**kwargs, **extra)
        messages.put(JobResult(result))
    except BaseException as exc:
        messages.put(failure_event(exc))


def _watch_stop_flag(stop, token: CancelToken) -> None:
    """In the child: cancel the task when asked, and quit at once if the window's process has gone away."""
    parent = multiprocessing.parent_process()
    while not stop.value:
        if parent is not None and not parent.is_alive():
            os._exit(1)  # nobody is left to receive the result; checkpoints are written atomically
        time.sleep(POLL_S)
    token.cancel()


def _news(news: JobEvent | Progress) -> JobEvent:
    """The event a task reported; a job ends by returning or raising, never by reporting its end."""
    event = as_event(news)
    if isinstance(event, (JobResult, JobFailed, JobCancelled)):
        raise TypeError(f"a job ends by returning or raising, not by reporting {type(event).__name__}")
    return event


def _plain(event: JobEvent) -> JobEvent:
    """``event`` with a preview's array as a plain float32 array (a memmap or a view would pickle its base)."""
    if isinstance(event, Preview):
        return Preview(event.epoch, np.ascontiguousarray(event.array, dtype=np.float32))
    return event


# --------------------------------------------------------------------------------------------- child-side helpers
def compute_device() -> tuple[str, str]:
    """(label for the status bar, "GPU" or "CPU") of the backend's compute device (imports it: run isolated)."""
    from voxelstudio.ml.device import configure_devices, describe_device

    info = configure_devices()
    return str(describe_device(info)), info.kind


def check_model(path: str | Path) -> str:
    """Load a denoiser to make sure it is usable; returns its path (imports TensorFlow: run isolated)."""
    from voxelstudio.ml.persistence import load_model

    load_model(path)
    return str(path)
