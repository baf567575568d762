"""A Keras ``PyDataset`` of freshly generated batches (e.g. simulated (raw, target) patches): no fixed training set.

It is generic over a picklable *batch function* ``make_batch(key) -> (x, y)``, ``(x, y, counts)`` or ``(x, y,
counts, spacings)`` (each patch's voxel size, (N, 3) µm) that depends on nothing but ``key``
(``voxelstudio.sim.stream.PatchStream`` is one: the tasks layer passes it in, since ml/ does not import sim/). So
the batches are the same with 0, 1 or N workers, threads or processes. ``batches=None`` makes the dataset endless
(use ``model.fit(..., steps_per_epoch=...)``; the key is the running batch number, so every epoch sees new data);
with ``batches=N`` an epoch has N batches and the key also counts the epochs (``on_epoch_end``; Keras's TensorFlow
backend peeks a batch or two for the output signature and ends an epoch after that, so a few batches are made and
not trained on, and ``fit``'s default ``shuffle=True`` reorders each epoch's batches). ``counts`` (e.g. PSF cache
hits and misses) are summed into :attr:`SimulatedPatches.counts`. With ``spacing_input`` the inputs are ``(x,
spacing features)`` for a spacing-conditioned model (:mod:`voxelstudio.ml.spacing`), and the batch function must
give the spacings.

Workers: ``workers=0`` generates in the calling thread. ``use_multiprocessing=True`` runs ``workers`` processes (a
``ProcessPoolExecutor`` started with "spawn": no TensorFlow/JAX state is forked, and a worker imports only what the
batch function needs) and lets Keras keep ``workers + 1`` requests in flight from its thread pool. Without it,
``workers`` Keras threads generate in this process. Processes are ours rather than Keras's ``multiprocessing.Pool``
because a pool worker that dies leaves that pool's result waiting forever; an executor whose worker dies fails every
pending batch with ``BrokenProcessPool``, raised here as :class:`GeneratorWorkerError`, so ``fit`` stops with that
error instead of hanging. An exception inside the batch function reaches ``fit`` unchanged. Call :meth:`close` (or
use ``with``) to stop the processes. Spawned workers import the main script again: keep it behind
``if __name__ == "__main__"`` and import Keras inside functions there, or every worker loads TensorFlow.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import keras
import numpy as np

from voxelstudio.ml.spacing import features_batch

BatchFn = Callable[[int], tuple[Any, ...]]


CACHE_HITS = ("cache_hits", "cache_disk_hits")
CACHE_MISSES = "cache_misses"


def hit_rate(counts: Mapping[str, int], hits: tuple[str, ...] = CACHE_HITS, misses: str = CACHE_MISSES) -> float:
    """sum(counts[hits]) / (that + counts[misses]); 0 before any look-up."""
    found = sum(counts.get(name, 0) for name in hits)
    total = found + counts.get(misses, 0)
    return found / total if total else 0.0


class GeneratorWorkerError(RuntimeError):
    """A generator worker process died (killed, out of memory, crashed) while making a batch."""


class SimulatedPatches(keras.utils.PyDataset):
    """Batches ``(x[..., None], y[..., None])`` (float32, channels last) from ``make_batch``; with ``spacing_input``
    ``((x[..., None], features), y[..., None])``."""

    def __init__(
        self,
        make_batch: BatchFn,
        *,
        batches: int | None = None,
        workers: int = 0,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        spacing_input: bool = False,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
        if batches is not None and (isinstance(batches, bool) or not isinstance(batches, int) or batches < 1):
            raise ValueError(f"batches must be a positive integer or None, got {batches!r}")
        self.processes = workers if use_multiprocessing else 0
        threads = workers + 1 if self.processes else max(workers, 1)
        super().__init__(workers=threads, use_multiprocessing=False, max_queue_size=max_queue_size)
        self.make_batch = make_batch
        self.spacing_input = spacing_input
        self.batches = batches
        self.epoch = 0
        self.counts: Counter[str] = Counter()
        self.samples_made = 0
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self.error: Exception | None = None
        """The batch function's (or a dying worker's) error, once one happened."""

    @classmethod
    def for_training(
        cls, make_batch: BatchFn, *, batches: int, workers: int, epoch: int, spacing_input: bool = False
    ) -> SimulatedPatches:
        """``batches`` batches an epoch made by ``workers`` processes (0: in Keras' loader thread), two requests
        queued per worker, keyed from ``epoch`` on (a resumed run goes on with new batches)."""
        data = cls(make_batch, batches=batches, workers=workers, use_multiprocessing=workers > 0,
                   max_queue_size=2 * workers + 2, spacing_input=spacing_input)  # fmt: skip
        data.epoch = epoch
        return data

    @contextlib.contextmanager
    def raising_own_errors(self) -> Iterator[SimulatedPatches]:
        """Use the dataset, then stop its workers; an error the backend raised for a failed batch becomes the batch
        function's (or a dead worker's) own error."""
        try:
            yield self
        except Exception as exc:
            if self.error is not None and self.error is not exc:
                raise self.error from exc
            raise
        finally:
            self.close()

    @property
    def num_batches(self) -> int | None:
        return self.batches

    def key(self, index: int) -> int:
        """The batch function's key for ``index`` in the current epoch."""
        return index if self.batches is None else self.epoch * self.batches + index

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray]:
        try:
            x, y, *rest = self._make(self.key(int(index)))
            if self.spacing_input and len(rest) < 2:
                raise ValueError("the batch function gives no voxel sizes, which a spacing-conditioned model needs")
        except Exception as exc:
            self.error = exc  # TensorFlow re-raises it wrapped in its own error; the trainer raises this one
            raise
        with self._lock:
            if rest:
                self.counts.update(rest[0])
            self.samples_made += len(x)
        inputs = np.asarray(x, dtype=np.float32)[..., None]
        if self.spacing_input:
            inputs = (inputs, features_batch(rest[1]))
        return inputs, np.asarray(y, dtype=np.float32)[..., None]

    def _make(self, key: int) -> tuple[Any, ...]:
        if not self.processes:
            return self.make_batch(key)
        try:
            return self._pool().submit(self.make_batch, key).result()
        except BrokenProcessPool as exc:
            raise GeneratorWorkerError(
                f"a generator worker process died while making batch {key} ({exc}); the run cannot continue"
            ) from exc

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                context = multiprocessing.get_context("spawn")
                self._executor = ProcessPoolExecutor(self.processes, mp_context=context)
            return self._executor

    def rate(self, hits: tuple[str, ...] = CACHE_HITS, misses: str = CACHE_MISSES) -> float:
        """:func:`hit_rate` of this dataset's counts: e.g. the PSF cache hit rate; 0 before any look-up."""
        return hit_rate(self.counts, hits, misses)

    def worker_pids(self) -> list[int]:
        """Process ids of the running worker processes (empty without processes or before the first batch)."""
        processes: dict[int, Any] = getattr(self._executor, "_processes", None) or {}
        return sorted(processes)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def close(self) -> None:
        """Stop the worker processes (pending batches are cancelled)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> SimulatedPatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
