"""Whole files as tasks on a dask.distributed cluster, for runs over many small files.

Each task reads one file, predicts it tiled and writes its outputs atomically with the function the in-process run
uses (passed in, so the outputs are the same), on a worker that loads the model once
(:func:`voxelstudio.tasks.block_predict.cached_model`). A task returns which worker ran it and whether it read the
model file there; the driver logs one line per model load naming the worker, and a summary.

Cancelling (Ctrl-C) cancels the tasks not yet started; a task already running on a remote worker finishes its file
(written atomically, so never half-written), on a local cluster it dies with its worker, which leaves only a
temporary that cannot be mistaken for a result. ``--resume`` then skips the files whose outputs exist. Paths go to
the workers absolute (a remote worker's working folder is not the driver's).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from voxelstudio.core.errors import VoxelStudioError
from voxelstudio.core.memory import check_available
from voxelstudio.core.progress import CancelToken
from voxelstudio.tasks.block_predict import cached_model
from voxelstudio.tasks.blockwise import connect

log = logging.getLogger(__name__)
LOCAL = "local"
"""The scheduler "address" that starts a LocalCluster on this machine (``local:N`` for N workers)."""
WORKER_BYTES = 3 << 29
"""Memory one worker needs (TensorFlow, the model and a small volume: 1.5 GiB) when sizing a local cluster."""
WHOLE_FILE_BYTES = 1 << 28
"""Files up to this size on disk (256 MB) go to a worker whole; larger ones are denoised on the driver, tiled."""
POLL_S = 0.2


@dataclass(frozen=True)
class FileDone:
    """What a whole-file task did: the output, the worker that wrote it and whether it read the model there."""

    path: Path
    worker: str
    loaded_model: bool


def is_local(address: str) -> bool:
    """Whether ``address`` asks for a LocalCluster (``local`` or ``local:N``) rather than a running scheduler."""
    return address == LOCAL or address.startswith(f"{LOCAL}:")


def check_scheduler(address: str) -> None:
    """ValueError for a malformed ``local:N`` or scheduler address (before the model is loaded or anything is read):
    dask takes ``protocol://host[:port]`` or ``host:port``; anything else would only fail after its connect timeout,
    with a traceback from the half-made Client."""
    if is_local(address):
        local_workers(address)
    elif not (
        re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", address, re.IGNORECASE) or re.fullmatch(r"[\w.-]+:\d+", address)
    ):
        raise ValueError(f"--scheduler {address}: expected a scheduler address (tcp://host:8786) or local[:N]")


def local_workers(address: str) -> int:
    """Workers of a ``local`` or ``local:N`` cluster: N (VoxelStudioError when N workers need more memory than there
    is), else one per core that memory allows (at least one)."""
    _, _, count = address.partition(":")
    if count:
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--scheduler {address}: expected local or local:N with N a positive integer")
        workers = int(count)
        check_available(workers * WORKER_BYTES, f"--scheduler {address}: starting {workers} workers", "give fewer")
        return workers
    by_memory = psutil.virtual_memory().available // WORKER_BYTES
    return max(1, min(os.cpu_count() or 1, int(by_memory)))


@contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A dask Client for ``address``: a scheduler (tcp://host:8786; one clear error when it does not answer within
    10 s) or ``local[:N]``, a LocalCluster of worker processes that ends with the block: one dask thread each, and
    TensorFlow's thread pools sized so the workers together use the cores once (left alone, each would take all)."""
    if is_local(address):
        from dask.distributed import Client, LocalCluster

        from voxelstudio.ml.quiet_start import start_backend_quietly

        workers = local_workers(address)
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": threads}
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=env,
                silence_logs=logging.ERROR,  # Ctrl-C's shutdown warnings would garble the progress bar
            ) as cluster,
            Client(cluster, set_as_default=False) as client,
        ):
            # the backend started with TensorFlow's native start-up lines filtered, as the CLI does for itself:
            # the workers' stderr is this terminal's
            client.run(start_backend_quietly)
            yield client
        return
    client = connect(address)
    try:
        yield client
    finally:
        client.close()


def worker_name() -> str:
    """The dask worker's address, or this process's id outside a worker."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"process {os.getpid()}"


def whole_file_task(
    denoise_one: Callable[..., Path], source: Path, out: Path, model_path: Path, sha256: str, options: Any
) -> FileDone:
    """On a worker: ``denoise_one(source, out, model_path, model, options)`` with the worker's one copy of the
    model (file hash ``sha256``)."""
    try:
        loaded, fresh = cached_model(str(model_path), options.trusted, sha256)
        path = denoise_one(source, out, model_path, loaded, options)
    except VoxelStudioError as exc:
        raise VoxelStudioError(str(exc)) from None  # its subclasses take two arguments and do not unpickle
    return FileDone(path, worker_name(), fresh)


def run_whole_files(
    client: Any,
    denoise_one: Callable[..., Path],
    files: Sequence[tuple[Path, Path]],
    model_path: Path,
    sha256: str,
    options: Any,
    on_done: Callable[[FileDone], None],
    cancel: CancelToken | None,
) -> dict[str, int]:
    """Send each (source, out) of ``files`` to the cluster as one task; ``on_done`` as each finishes. Returns the
    model loads per worker. A failed file cancels the rest and raises one line; finished files are kept."""
    loads: dict[str, int] = {}
    futures = {
        client.submit(
            whole_file_task,
            denoise_one,
            source.resolve(),
            out.resolve(),
            model_path.resolve(),
            sha256,
            options,
            pure=False,
        ): source
        for source, out in files
    }
    pending = list(futures)
    try:
        while pending:
            if cancel is not None:
                cancel.raise_if_cancelled("denoising")
            state = [(future, future.done()) for future in pending]
            pending = [future for future, done in state if not done]
            if len(pending) == len(state):
                time.sleep(POLL_S)
            for future in (future for future, done in state if done):
                if cancel is not None:
                    cancel.raise_if_cancelled("denoising")
                try:
                    done = future.result()
                except VoxelStudioError:
                    raise
                except Exception as exc:
                    detail = " ".join(str(exc).split())[:200]
                    raise VoxelStudioError(
                        f"{futures[future]}: failed on a dask worker ({type(exc).__name__}: {detail}); finished "
                        "files are kept, run the same command again with --resume"
                    ) from exc
                loads[done.worker] = loads.get(done.worker, 0) + int(done.loaded_model)
                if done.loaded_model:
                    log.info("worker %s loaded the model %s", done.worker, model_path.name)
                on_done(done)
    except BaseException:
        client.cancel(list(futures))
        raise
    return loads


def loads_summary(loads: dict[str, int]) -> str:
    """One line on how often each worker loaded the model."""
    counts = set(loads.values())
    if counts == {1}:
        return f"model loaded once on each of {len(loads)} workers"
    return "model loads per worker: " + ", ".join(f"{w} {n}" for w, n in sorted(loads.items()))
