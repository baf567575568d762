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

from voxelstudio.core.errors import Cancelled, VoxelStudioError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn
from voxelstudio.core.volume import Volume

POLL_S = 0.05
CHILD_NICENESS = 5
CANCEL_GRACE_S = 20.0
"""How long a cancelled child may take to stop cleanly (training saves its best model) before it is killed."""


def _rebuild_volume(data: np.ndarray, spacing, name: str, source, metadata: dict) -> Volume:
    return Volume(data, spacing=spacing, name=name, source=source, metadata=metadata)


def _reduce_volume(volume: Volume):
    return _rebuild_volume, (volume.data, volume.spacing, volume.name, volume.source, dict(volume.metadata))


ForkingPickler.register(Volume, _reduce_volume)  # Volume's read-only metadata mapping does not pickle by itself


def describe_exception(exc: BaseException) -> str:
    """One readable line for a dialog."""
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller volume, a smaller patch or batch size, or more tiles"
    text = " ".join(str(exc).split())
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
    report: ReportFn,
    cancel: CancelToken | None = None,
    on_preview: Callable[[int, np.ndarray], None] | None = None,
) -> Any:
    """Call ``function`` (a module-level function, sent by reference) with ``kwargs`` in a fresh process and
    return its result. ``report``, ``cancel`` and ``on_preview`` are passed on only if the function takes them.

    ``report`` receives the child's Progress, ``on_preview`` its previews; ``cancel`` is forwarded to the child's
    own CancelToken. Raises what the task raised (Cancelled, MemoryError, or IsolatedTaskError with its message and
    traceback), or IsolatedTaskError when the process died (for example killed for lack of memory).
    """
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    stop = context.RawValue("b", 0)  # a plain shared flag: an Event can hang its setter if the child died
    child = context.Process(
        target=_child_main,
        args=(function, dict(kwargs), messages, stop, on_preview is not None),
        name=f"voxelstudio-{function.__name__}",
        daemon=True,
    )
    child.start()
    cancelled_at: float | None = None
    try:
        while True:
            if cancel is not None and cancel.cancelled and cancelled_at is None:
                stop.value = 1
                cancelled_at = time.monotonic()
            if cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_S:
                raise Cancelled(function.__name__)
            try:
                kind, payload = messages.get(timeout=POLL_S)
            except queue.Empty:
                if child.is_alive():
                    continue
                try:  # the child may have exited just after its last message was sent
                    kind, payload = messages.get(timeout=1.0)
                except queue.Empty:
                    raise _died(child.exitcode) from None
            if kind == "progress":
                report(payload)
            elif kind == "preview" and on_preview is not None:
                on_preview(*payload)
            elif kind == "result":
                return payload
            elif kind == "error":
                raise _rebuild_error(payload)
    finally:
        stop.value = 1
        child.join(timeout=5.0)
        if child.is_alive():
            child.terminate()
            child.join(timeout=5.0)
        messages.close()
        messages.cancel_join_thread()


def _died(exitcode: int | None) -> IsolatedTaskError:
    hint = "; it was probably out of memory" if exitcode in (-9, 137) else ""
    return IsolatedTaskError(f"the worker process stopped unexpectedly (exit code {exitcode}){hint}")


def _rebuild_error(payload: dict[str, Any]) -> BaseException:
    if payload["cancelled"]:
        return Cancelled(payload["message"].removesuffix(" cancelled"))
    if payload["memory"]:
        return MemoryError(payload["message"])
    return IsolatedTaskError(payload["message"], payload["traceback"])


def _child_main(function: Callable[..., Any], kwargs: dict[str, Any], messages, stop, want_preview: bool) -> None:
    """Runs in the child: call the task, stream progress and previews, send the result or the error."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)  # the window stays responsive while the job uses every core
    from voxelstudio.ml.quiet_start import start_tensorflow_quietly

    start_tensorflow_quietly()  # every isolated job uses TensorFlow; its start-up lines are not errors
    token = CancelToken()
    threading.Thread(target=_watch_stop_flag, args=(stop, token), daemon=True).start()
    try:
        accepted = inspect.signature(function).parameters
        extra: dict[str, Any] = {}
        if "report" in accepted:
            extra["report"] = lambda progress: messages.put(("progress", _plain_progress(progress)))
        if "cancel" in accepted:
            extra["cancel"] = token
        if want_preview and "on_preview" in accepted:
            extra["on_preview"] = lambda epoch, array: messages.put(("preview", (int(epoch), np.asarray(array))))
        result = function(**kwargs, **extra)
        messages.put(("result", result))
    except BaseException as exc:
        messages.put(
            (
                "error",
                {
                    "message": describe_exception(exc) if not isinstance(exc, Cancelled) else str(exc),
                    "traceback": traceback.format_exc(),
                    "cancelled": isinstance(exc, Cancelled),
                    "memory": isinstance(exc, MemoryError),
                },
            )
        )


def _watch_stop_flag(stop, token: CancelToken) -> None:
    """In the child: cancel the task when asked, and quit at once if the window's process has gone away."""
    parent = multiprocessing.parent_process()
    while not stop.value:
        if parent is not None and not parent.is_alive():
            os._exit(1)  # nobody is left to receive the result; checkpoints are written atomically
        time.sleep(POLL_S)
    token.cancel()


def _plain_progress(progress: Progress) -> Progress:
    """A Progress whose values are plain Python numbers and strings (always picklable)."""
    values = {key: (value.item() if isinstance(value, np.generic) else value) for key, value in progress.values.items()}
    return Progress(progress.done, progress.total, progress.message, values)


# --------------------------------------------------------------------------------------------- child-side helpers
def describe_compute_device() -> str:
    """The compute device label for the status bar (imports TensorFlow: run isolated)."""
    from voxelstudio.ml.device import describe_device

    return str(describe_device())


def check_model(path: str | Path) -> str:
    """Load a denoiser to make sure it is usable; returns its path (imports TensorFlow: run isolated)."""
    from voxelstudio.ml.persistence import load_model

    load_model(path)
    return str(path)
