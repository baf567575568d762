"""Prediction of one block of a lazily read volume, exactly as whole-volume prediction computes those voxels.

A block (one output chunk) is predicted from the block plus a halo of at least the network's one-sided reach, cut
on the same pooling grid and padded the same way as whole-volume prediction pads the volume. With test-time
augmentation every transform (quarter turns in y-x, flip in z) is applied to the region read for the block: the
region is chosen on the *transformed* volume's grid and padding, so each transform's output equals the whole
transformed volume's, and the mean and spread over the 8 transforms equal :func:`ml.inference.predict_volume`'s.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core import subvoxel
from voxelstudio.core.errors import NonFiniteValuesError
from voxelstudio.core.memory import release_free_heap
from voxelstudio.io import zarr_

log = logging.getLogger(__name__)
Shape3 = tuple[int, int, int]
IDENTITY = ((0, False),)
"""The transforms of plain prediction: no turn, no flip."""
UNCERTAINTY_FOLDER = ".voxelstudio-uncertainty"
"""Where, inside the output's temporary store, the TTA spread is written as an OME-Zarr store of its own."""
BLOCK_TILE_BYTES = 1 << 29
"""A leaner tile budget (the estimate's bytes) for block-wise prediction, half the whole-volume cap, used where it
costs little time (LEAN_COST_RATIO): block-wise runs for memory, and TensorFlow with a model already takes about
620 MB of a process (720 MB while TensorFlow's start still imported JAX). A 1024x1024x512 store peaked at 1685 MB
with the whole-volume cap and at 1402 MB with this one (issue 17: 1.5 GB), 14% slower, with a short-reach model
(benchmarks/README.md, "Block-wise prediction")."""
MEASURED_TILE_FRACTION = 0.45
"""What TensorFlow on a CPU keeps per tile, as a fraction of :func:`ml.tiling.estimate_memory` (which allows 3x for
framework workspace): measured 0.43 for the 8-filter 3x3x6 U-Net (225 of 528 bytes per voxel) and for the bundled
12-filter 3x3x3 one (340 of 789). oneDNN holds that memory after the tile, so it counts once per process."""
REGION_COPIES = 4
"""Region-sized float32 arrays alive while a block's tiles run (the read region, its reflected and its pooling-grid
padded copies, the output), rounded up."""
TTA_COPIES = 4
"""Block-sized arrays test-time augmentation adds (the running mean, M2, a prediction and its delta), counted as
region-sized."""
PYRAMID_CHUNK_COPIES = 9
"""Chunk-sized float32 arrays writing the lower-resolution levels holds after the last block, while the tiles'
memory stays: each output chunk is built from one input chunk at a time, measured 8.2 chunks above a bare process
with 16.8 MB chunks (12.6 when each output chunk read 2x2 chunks through dask)."""
HEADROOM = 0.08
"""Of a memory limit, kept free for allocator fragmentation and the pyramid levels written after the last block."""
LEAN_COST_RATIO = 1.5
"""The lean budget is used when its tiles compute at most this many times what the whole-volume budget's do. With a
long reach along z (75 planes, the first bundled model's) a 312x312x216 region would compute 15x as much: it keeps
the whole-volume budget (and its memory)."""


@dataclass(frozen=True)
class BlockJob:
    """Everything one block needs (picklable: it travels to dask workers)."""

    source: str
    variable: str | None
    model_path: str
    trusted: bool
    store: str
    value_range: tuple[float, float]
    tile_shape: Shape3 | None
    tta: bool = False
    model_sha256: str | None = None
    memory_limit: int | None = None
    """Bytes this process should stay under (``--memory-limit``; on a dask worker without it, the worker's own
    limit): the tiles are sized to fit what the model and the block's buffers leave. None: the default budget."""
    chunk_voxels: int = 0
    """Voxels of one output chunk (a whole block), the unit the pyramid levels written at the end read and write."""
    spacing: tuple[float, float, float] | None = None
    """The volume's voxel size (y, x, z µm), which a model that takes the voxel size needs."""
    known_spacing: tuple[float, float, float] | None = None
    """The same when the store or the user gave it (None: not known), which the model's input shift is scaled to
    (``persistence.LoadedModel.for_spacing``)."""


_MODELS: dict[tuple[str, bool, str | None], Any] = {}


def check_finite(data: np.ndarray, source: str | Path, name: str, where: str = "") -> None:
    """NonFiniteValuesError (a VolumeReadError) naming ``source`` when ``data`` (read from it) holds NaN or infinite
    values (a float64 value beyond float32's range becomes infinite when read)."""
    if not np.isfinite(data).all():
        what = f"array {name!r}" if name and name != zarr_.ROOT_ARRAY else "the array"  # a store that is one array
        raise NonFiniteValuesError(
            source, f"{what} contains NaN or Inf values{where} (or values beyond the float32 range); replace them"
        )


def cached_model(path: str, trusted: bool, sha256: str | None = None, loaded: Any = None) -> tuple[Any, bool]:
    """The model at ``path`` with file hash ``sha256`` (None: whichever this process has), loaded once per
    process; ``loaded``: the model the caller already has. Returns it and whether this call read the file."""
    if loaded is not None:
        _MODELS[(path, trusted, loaded.sha256)] = _MODELS[(path, trusted, None)] = loaded
    key = (path, trusted, sha256)
    if key in _MODELS:
        return _MODELS[key], False
    from voxelstudio.ml.persistence import load_model

    model = load_model(path, trusted=trusted)
    if sha256 is not None and model.sha256 != sha256:
        raise ValueError(f"{path}: the model file changed during the run (its SHA-256 differs); run again")
    _MODELS[(path, trusted, model.sha256)] = _MODELS[(path, trusted, None)] = model
    log.info("process %d loaded model %s", os.getpid(), path)
    return model, True


def block_grid(shape: Sequence[int], block: Sequence[int]) -> list[tuple[Shape3, Shape3]]:
    """(start, stop) of every block of ``block`` voxels covering ``shape`` (H, W, Z), in C order."""
    starts = [range(0, int(s), int(b)) for s, b in zip(shape, block, strict=True)]
    return [
        (start, tuple(min(a + int(b), int(s)) for a, b, s in zip(start, block, shape, strict=True)))  # type: ignore[misc]
        for start in itertools.product(*starts)
    ]


def region(start: int, stop: int, size: int, margin: int, multiple: int) -> tuple[int, int, int, int]:
    """Where to read for a block [start, stop) on one axis: (padded-coordinate region a, b; pad before; pad after).

    Whole-volume prediction reflects ``extra = (-size) % multiple`` voxels split evenly around the volume; the region
    lies on that padded volume's pooling grid and reaches ``margin`` voxels beyond the block where it can.
    """
    extra = (-size) % multiple
    low = extra // 2
    padded = size + extra
    a = max(0, (start + low - margin) // multiple * multiple)
    b = min(padded, -(-(stop + low + margin) // multiple) * multiple)
    return a, b, max(0, low - a), max(0, b - low - size)


def low_pad(size: int, multiple: int) -> int:
    return ((-size) % multiple) // 2


def axis_map(turns: int, flip_z: bool) -> list[tuple[int, bool]]:
    """For each axis of the transformed volume (``inference.forward_transform``): (original axis, reversed)."""
    axes = [(0, False), (1, False), (2, flip_z)]
    for _ in range(turns % 4):  # np.rot90 by one turn: new axis 0 = old axis 1 reversed, new axis 1 = old axis 0
        axes = [(axes[1][0], not axes[1][1]), axes[0], axes[2]]
    return axes


def limited_budget(
    limit: int, baseline: int, region_voxels: int, *, tta: bool = False, block_voxels: int = 0, threads: int = 1
) -> int:
    """The tile budget (in :func:`ml.tiling.estimate_memory`'s bytes) that keeps a process whose resident size was
    ``baseline`` bytes with the model loaded under ``limit`` bytes while each of its ``threads`` predicts a region of
    ``region_voxels``, and afterwards while the pyramid levels of a store chunked in blocks of ``block_voxels`` are
    written; 0 when nothing is left (the smallest tiles are then used). The baseline is the process's, shared: it is
    taken from the limit once, not once per thread."""
    copies = REGION_COPIES + (TTA_COPIES if tta else 0)
    buffers = max(copies * region_voxels, PYRAMID_CHUNK_COPIES * block_voxels) * 4
    free = (limit * (1.0 - HEADROOM) - baseline) / max(1, threads) - buffers
    return max(0, int(free / MEASURED_TILE_FRACTION))


_BASELINE_RSS: dict[str | None, int] = {}
"""Per model (file hash): this process's resident size before its first block with it (no tile run yet)."""
_WARNED_LIMITS: set[int] = set()


def process_baseline(model_sha256: str | None = None) -> int:
    """This process's resident size (bytes) the first time a block with the model is predicted, freed heap memory
    returned first; later blocks' tiles add to it."""
    if model_sha256 not in _BASELINE_RSS:
        import psutil

        release_free_heap()
        _BASELINE_RSS[model_sha256] = psutil.Process().memory_info().rss
    return _BASELINE_RSS[model_sha256]


def worker_memory_limit() -> tuple[int | None, int]:
    """The dask worker running this code: its memory limit up to where dask pauses it (None when it has none) and
    its threads, each of which may run a block at once; (None, 1) outside a worker."""
    if "distributed" not in sys.modules:  # a process that never imported it is no worker
        return None, 1
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not in a worker's task
        return None, 1
    memory, threads = worker.memory_manager, max(1, worker.state.nthreads)
    if not memory.memory_limit:
        return None, threads
    fraction = memory.memory_pause_fraction or memory.memory_terminate_fraction or 1.0
    return int(memory.memory_limit * fraction), threads


def effective_memory_limit(job: BlockJob) -> tuple[int | None, int]:
    """The limit of this process (``job.memory_limit``, and on a dask worker without a GPU its own up to the pause
    (:func:`worker_memory_limit`): the smaller) and how many blocks it predicts at once. (A GPU's tiles live in its
    memory, not the worker's.)"""
    worker, threads = worker_memory_limit()
    if worker is not None:
        from voxelstudio.ml.backend import accelerators

        if accelerators():
            worker = None
    limits = [v for v in (job.memory_limit, worker) if v is not None]
    return (min(limits) if limits else None), threads


def block_plan(cfg: Any, shape: Shape3, tile_shape: Shape3 | None, memory_limit: int | None = None,
               *, tta: bool = False, baseline: int = 0, block_voxels: int = 0, threads: int = 1) -> Any:  # fmt: skip
    """The tiling of a block's region: ``tile_shape`` when given, else the lean budget's tiles where they cost at
    most LEAN_COST_RATIO times the whole-volume budget's, else those; under ``memory_limit`` (bytes, for a process
    of ``baseline`` bytes with the model loaded, blocks of ``block_voxels``, ``threads`` of them at once) neither
    budget exceeds what :func:`limited_budget` leaves."""
    from voxelstudio.ml.inference import default_tile_budget, plan_prediction
    from voxelstudio.ml.tiling import tiling_cost

    if tile_shape is not None:
        return plan_prediction(cfg, shape, tile_shape=tile_shape)
    budget = default_tile_budget()
    if memory_limit is not None:
        fitting = limited_budget(
            memory_limit, baseline, math.prod(shape), tta=tta, block_voxels=block_voxels, threads=threads
        )
        budget = min(budget, fitting)
    plan = plan_prediction(cfg, shape, budget_bytes=budget)
    if memory_limit is not None and plan.tile_bytes > budget and memory_limit not in _WARNED_LIMITS:
        _WARNED_LIMITS.add(memory_limit)
        log.warning(
            "memory limit %.0f MB: even the smallest tiles (%s) may exceed it with this model (%.0f MB in use "
            "before the first block)", memory_limit / 1e6, plan.tile_shape, baseline / 1e6,
        )  # fmt: skip
    lean = plan_prediction(cfg, shape, budget_bytes=min(budget, BLOCK_TILE_BYTES))

    def cost(p: Any) -> int:
        return tiling_cost(p.padded_shape, p.tile_shape, p.overlap, p.multiple)

    return lean if cost(lean) <= LEAN_COST_RATIO * cost(plan) else plan


def _predict_transformed(job: BlockJob, loaded: Any, lazy: Any, start: Shape3, stop: Shape3, turns: int, flip: bool,
                         limit: int | None = None, baseline: int = 0, threads: int = 1):  # fmt: skip
    """The block's prediction (original orientation, target units) under one TTA transform; tiles within ``limit``
    bytes for a process of ``baseline`` bytes predicting ``threads`` blocks at once (:func:`block_plan`)."""
    from voxelstudio.ml.denoisers import required_multiple
    from voxelstudio.ml.inference import (
        forward_transform,
        inverse_transform,
        normalized_predict_fn,
        predict_unit,
        tile_margin,
    )

    cfg = loaded.train_config.model
    axes = axis_map(turns, flip)
    sizes = [lazy.shape[o] for o, _ in axes]

    def transformed(a: int, b: int, axis: int) -> tuple[int, int]:
        original, reverse = axes[axis]
        n = lazy.shape[original]
        return (n - b, n - a) if reverse else (a, b)

    t_start, t_stop = zip(*(transformed(start[o], stop[o], i) for i, (o, _) in enumerate(axes)), strict=True)
    multiples, margins = required_multiple(cfg), tile_margin(cfg)
    regions = [region(*args) for args in zip(t_start, t_stop, sizes, margins, multiples, strict=True)]
    lows = [low_pad(n, m) for n, m in zip(sizes, multiples, strict=True)]
    read: list[slice] = [slice(0)] * 3
    for i, ((a, b, before, after), low) in enumerate(zip(regions, lows, strict=True)):
        r0, r1 = transformed(a + before - low, b - after - low, i)  # the same map takes it back
        read[axes[i][0]] = slice(r0, r1)
    x = _read_shifted(job, loaded.shift_for(flip), lazy, read, start)
    release_free_heap()  # the chunks decompressed to read the region, before the tiles
    x = forward_transform(x, turns, flip)
    pads = [(before, after) for _, _, before, after in regions]
    if any(p != (0, 0) for p in pads):
        x = np.pad(x, pads, mode="reflect")
    tile_shape = job.tile_shape
    if tile_shape is not None and turns % 2:
        tile_shape = (tile_shape[1], tile_shape[0], tile_shape[2])
    plan = block_plan(cfg, x.shape, tile_shape, limit, tta=job.tta, baseline=baseline, block_voxels=job.chunk_voxels,
                      threads=threads)  # fmt: skip
    tile_fn = normalized_predict_fn(loaded.model, loaded.normalizer, job.value_range, job.spacing)
    out, _, _ = predict_unit(loaded.model, cfg, x, plan=plan, tile_fn=tile_fn)
    keep = tuple(
        slice(s0 + low - a, s1 + low - a)
        for s0, s1, (a, _, _, _), low in zip(t_start, t_stop, regions, lows, strict=True)
    )
    return inverse_transform(out[keep], turns, flip)


def _read_shifted(job: BlockJob, shift: Sequence[float], lazy: Any, read: list[slice], start: Shape3) -> np.ndarray:
    """The region ``read`` (original axes) of the volume as float32, moved by ``shift`` (the model's, for the view)
    exactly as whole-volume prediction moves the whole volume: read with the shift's reach around it, moved, cut
    back."""
    extra = subvoxel.reach(shift)
    wide = [slice(max(0, r.start - e), min(n, r.stop + e)) for r, e, n in zip(read, extra, lazy.shape, strict=True)]
    x = zarr_.compute(Path(job.source), lazy.data[tuple(wide)]).astype(np.float32, copy=False)
    check_finite(x, job.source, lazy.name, f" in the block at voxel (y, x, z) {tuple(int(a) for a in start)}")
    if not any(extra):
        return x
    x = subvoxel.translate(x, shift)
    return np.ascontiguousarray(
        x[tuple(slice(r.start - w.start, r.stop - w.start) for r, w in zip(read, wide, strict=True))]
    )


def predict_block(job: BlockJob, start: Shape3, stop: Shape3) -> tuple[int, bool]:
    """Predict one block (the mean over the TTA transforms with ``job.tta``, and their spread) and write it into the
    temporary store(s); returns (process id, whether it loaded the model)."""
    import zarr

    from voxelstudio.ml.inference import TTA_TRANSFORMS

    loaded, fresh = cached_model(job.model_path, job.trusted, job.model_sha256)
    loaded = loaded.for_spacing(job.known_spacing)  # its input shift in this volume's voxels
    limit, threads = effective_memory_limit(job)
    baseline = process_baseline(job.model_sha256) if limit is not None else 0  # before this process's first tile
    lazy = zarr_.open_lazy(job.source, job.variable)
    transforms = TTA_TRANSFORMS if job.tta else IDENTITY
    mean = m2 = None
    for index, (turns, flip) in enumerate(transforms):
        prediction = _predict_transformed(job, loaded, lazy, start, stop, turns, flip, limit, baseline, threads)
        if mean is None:
            mean, m2 = np.zeros_like(prediction), np.zeros_like(prediction)
        delta = prediction - mean  # Welford, in the order predict_volume uses
        mean += delta / (index + 1)
        m2 += delta * (prediction - mean)
    where = (slice(start[2], stop[2]), slice(start[0], stop[0]), slice(start[1], stop[1]))
    array = zarr.open_array(str(Path(job.store) / "0"), mode="r+")
    array[where] = np.ascontiguousarray(mean.transpose(2, 0, 1))  # type: ignore[union-attr]
    if job.tta:
        spread = np.sqrt(np.maximum(m2 / len(transforms), 0.0)).astype(np.float32)  # type: ignore[operator]
        spread_array = zarr.open_array(str(Path(job.store) / UNCERTAINTY_FOLDER / "0"), mode="r+")
        spread_array[where] = np.ascontiguousarray(spread.transpose(2, 0, 1))
        del spread
    del mean, m2, prediction, delta
    release_free_heap()  # the next block's tiles and buffers differ in size: without it the RSS creeps up
    return os.getpid(), fresh
