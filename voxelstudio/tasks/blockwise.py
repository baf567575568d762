"""Block-wise denoising of a (OME-)Zarr store into an OME-Zarr store: memory bounded by one block, resumable,
optionally spread over a dask.distributed cluster.

Each block of the output (one output chunk) is predicted from the block plus a halo of at least the network's
one-sided reach, cut on the same pooling grid and padded the same way as whole-volume prediction pads the volume, so
the result equals whole-volume tiled prediction. All blocks share one normalisation range, computed once from a
fixed strided sample of the volume (the whole volume when it has at most SAMPLE_VOXELS voxels).

The output is written into a hidden temporary store beside the target (``.<name>.<8 hex>.partial``, named from the
input, model and block shape so that ``resume`` finds it); a finished block is recorded as a marker file in its
``.voxelstudio-done`` folder. Only when every block is done is the store renamed to its final name.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.atomic import RESUMABLE, publish_directory, temporary_directory_name, write_json_atomically
from voxelstudio.core.errors import VolumeReadError, VolumeWriteError, VoxelStudioError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.io import zarr_
from voxelstudio.io.api import volume_name

log = logging.getLogger(__name__)
Shape3 = tuple[int, int, int]
SAMPLE_VOXELS = 1 << 22
"""Voxels of the strided sample the normalisation percentiles are computed from (16 MB of float32)."""
CONNECT_TIMEOUT_S = 10
DONE = ".voxelstudio-done"
RUN = RESUMABLE


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


_MODELS: dict[tuple[str, bool], Any] = {}


def _model(path: str, trusted: bool) -> tuple[Any, bool]:
    """The loaded model, once per process; True when this call loaded it."""
    key = (path, trusted)
    if key in _MODELS:
        return _MODELS[key], False
    from voxelstudio.ml.persistence import load_model

    _MODELS[key] = load_model(path, trusted=trusted)
    log.info("process %d loaded model %s", os.getpid(), path)
    return _MODELS[key], True


def block_grid(shape: Sequence[int], block: Sequence[int]) -> list[tuple[Shape3, Shape3]]:
    """(start, stop) of every block of ``block`` voxels covering ``shape`` (H, W, Z), in C order."""
    starts = [range(0, int(s), int(b)) for s, b in zip(shape, block, strict=True)]
    return [
        (start, tuple(min(a + int(b), int(s)) for a, b, s in zip(start, block, shape, strict=True)))  # type: ignore[misc]
        for start in itertools.product(*starts)
    ]


def _region(start: int, stop: int, size: int, margin: int, multiple: int) -> tuple[int, int, int, int]:
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


def predict_block(job: BlockJob, start: Shape3, stop: Shape3) -> tuple[int, bool]:
    """Predict one block and write it into the temporary store; returns (process id, whether it loaded the model)."""
    import zarr

    from voxelstudio.ml.denoisers import required_multiple
    from voxelstudio.ml.inference import normalized_predict_fn, plan_prediction, predict_unit, tile_margin

    loaded, fresh = _model(job.model_path, job.trusted)
    cfg = loaded.train_config.model
    lazy = zarr_.open_lazy(job.source, job.variable)
    regions = [
        _region(a, b, s, g, m)
        for a, b, s, g, m in zip(start, stop, lazy.shape, tile_margin(cfg), required_multiple(cfg), strict=True)
    ]
    read = tuple(slice(a + before - _low(s, m), b - after - _low(s, m)) for (a, b, before, after), s, m in
                 zip(regions, lazy.shape, required_multiple(cfg), strict=True))  # fmt: skip
    x = zarr_.compute(Path(job.source), lazy.data[read]).astype(np.float32, copy=False)
    pads = [(before, after) for _, _, before, after in regions]
    if any(p != (0, 0) for p in pads):
        x = np.pad(x, pads, mode="reflect")
    plan = plan_prediction(cfg, x.shape, tile_shape=job.tile_shape)
    tile_fn = normalized_predict_fn(loaded.model, loaded.normalizer, job.value_range)
    out, _, _ = predict_unit(loaded.model, cfg, x, plan=plan, tile_fn=tile_fn)
    keep = tuple(
        slice(s0 + _low(n, m) - a, s1 + _low(n, m) - a)
        for s0, s1, (a, _, _, _), n, m in zip(start, stop, regions, lazy.shape, required_multiple(cfg), strict=True)
    )
    array = zarr.open_array(str(Path(job.store) / "0"), mode="r+")
    array[start[2] : stop[2], start[0] : stop[0], start[1] : stop[1]] = np.ascontiguousarray(
        out[keep].transpose(2, 0, 1)
    )
    return os.getpid(), fresh


def _low(size: int, multiple: int) -> int:
    return ((-size) % multiple) // 2


def sample_range(normalizer: Any, lazy: zarr_.LazyVolume, source: Path) -> tuple[float, float]:
    """The normaliser's percentiles over a fixed strided sample of at most SAMPLE_VOXELS voxels (read lazily)."""
    step = max(1, math.ceil((zarr_.voxels(lazy.shape) / SAMPLE_VOXELS) ** (1 / 3)))
    sample = zarr_.compute(source, lazy.data[::step, ::step, ::step])
    return normalizer.input_range(sample)


def _marker(start: Sequence[int]) -> str:
    return "_".join(str(int(a)) for a in start)


@dataclass(frozen=True)
class BlockwiseResult:
    path: Path
    provenance: dict[str, Any]


def _connect(address: str) -> Any:
    from dask.distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except Exception as exc:
        raise VoxelStudioError(
            f"cannot reach the dask scheduler at {address} within {CONNECT_TIMEOUT_S} s ({type(exc).__name__})"
        ) from exc


def _run_blocks(
    job: BlockJob,
    todo: list[tuple[Shape3, Shape3]],
    done_dir: Path,
    total: int,
    client: Any,
    report: ReportFn,
    cancel: CancelToken | None,
    loads: dict[str, int],
) -> dict[str, int]:
    """Predict ``todo``; returns ``loads`` updated with the model loads per process id."""
    finished = total - len(todo)

    def record(start: Shape3, pid: int, fresh: bool) -> None:
        nonlocal finished
        (done_dir / _marker(start)).touch()
        loads[str(pid)] = loads.get(str(pid), 0) + int(fresh)
        finished += 1
        report(Progress(finished, total, "blocks", values={"block": finished, "blocks": total}))

    if client is None:
        for start, stop in todo:
            if cancel is not None:
                cancel.raise_if_cancelled("block-wise prediction")
            try:
                pid, fresh = predict_block(job, start, stop)
            except (VoxelStudioError, MemoryError):
                raise
            except Exception as exc:
                raise _block_failed(start, "", exc) from exc
            record(start, pid, fresh)
        return loads
    from dask.distributed import as_completed

    futures: dict[Any, Shape3] = {}
    try:
        futures = {client.submit(predict_block, job, a, b, pure=False): a for a, b in todo}
        for future in as_completed(list(futures), loop=client.loop):
            if cancel is not None:
                cancel.raise_if_cancelled("block-wise prediction")
            try:
                pid, fresh = future.result()
            except VoxelStudioError:
                raise
            except Exception as exc:
                raise _block_failed(futures[future], " on a dask worker", exc) from exc
            record(futures[future], pid, fresh)
    except BaseException:
        client.cancel(list(futures))
        raise
    return loads


def _resumable_run(run_file: Path) -> dict[str, Any] | None:
    """The record of an interrupted run to resume, or None when there is none or it cannot be read."""
    try:
        run = json.loads(run_file.read_text(encoding="utf-8"))
        float(run["value_range"][0]), float(run["value_range"][1])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return run


def _block_failed(start: Shape3, where: str, exc: BaseException) -> VoxelStudioError:
    detail = " ".join(str(exc).split())[:200]
    return VoxelStudioError(
        f"block at {tuple(start)} failed{where} ({type(exc).__name__}: {detail}); finished blocks are kept, "
        "run the same command again with --resume"
    )


def denoise_store(
    source: str | Path,
    out: str | Path,
    *,
    model_path: str | Path,
    variable: str | None = None,
    trusted: bool = False,
    block: Sequence[int] | None = None,
    tile_shape: Sequence[int] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    scheduler: str | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> BlockwiseResult:
    """Denoise the volume in a Zarr store block by block into the OME-Zarr store ``out`` (see the module notes).

    ``block`` (H, W, Z) is also the output's chunk shape (default: the input's chunks when 3-D, else 256x256x64);
    ``scheduler`` is a dask.distributed scheduler address (None: in this process); ``resume`` continues an
    interrupted run of the same input, model and block shape. Returns the output path and provenance.
    """

    source, out = Path(source), Path(out)
    if out.exists() and not overwrite:
        raise VolumeWriteError(out, "already exists; pass overwrite=True (--overwrite) to replace it")
    if not out.parent.is_dir():
        raise VolumeWriteError(out, f"folder {out.parent} does not exist")
    lazy = zarr_.open_lazy(source, variable)
    client = None if scheduler is None else _connect(scheduler)  # before anything is written
    try:
        return _denoise_store(source, out, lazy, client, model_path, variable, trusted, block, tile_shape, resume,
                              overwrite, scheduler, report, cancel)  # fmt: skip
    finally:
        if client is not None:
            client.close()


def _denoise_store(
    source: Path,
    out: Path,
    lazy: zarr_.LazyVolume,
    client: Any,
    model_path: str | Path,
    variable: str | None,
    trusted: bool,
    block: Sequence[int] | None,
    tile_shape: Sequence[int] | None,
    resume: bool,
    overwrite: bool,
    scheduler: str | None,
    report: ReportFn,
    cancel: CancelToken | None,
) -> BlockwiseResult:
    from voxelstudio.ml.persistence import file_sha256

    if block is None and len(lazy.array.chunks) == 3 and lazy.axes == ("z", "y", "x"):
        block = (lazy.array.chunks[1], lazy.array.chunks[2], lazy.array.chunks[0])
    chunks = zarr_.chunks_for(lazy.shape, block)
    block_hwz: Shape3 = (chunks[1], chunks[2], chunks[0])
    sha = file_sha256(Path(model_path))
    key = f"{source.resolve()}|{variable}|{sha}|{block_hwz}|{tile_shape}"
    temporary = temporary_directory_name(out, hashlib.sha256(key.encode()).hexdigest()[:8])
    done_dir, run_file = temporary / DONE, temporary / RUN
    loads_here: dict[str, int] = {}  # model loads in this process (for the normalisation sample)
    run = _resumable_run(run_file) if resume else None
    if temporary.exists() and run is None:
        shutil.rmtree(temporary)  # an earlier run of the same job that is not to be resumed (or unreadable)
    if run is not None:
        value_range = (float(run["value_range"][0]), float(run["value_range"][1]))
    else:
        loaded, fresh = _model(str(model_path), trusted)
        if fresh:
            loads_here[str(os.getpid())] = 1
        if loaded.train_config is None:
            raise VoxelStudioError(f"{model_path}: has no VoxelStudio training metadata")
        value_range = sample_range(loaded.normalizer, lazy, source)
        zarr_.create_store(temporary, lazy.shape, lazy.spacing, volume_name(out), chunks)
        done_dir.mkdir()
        run = {"input": str(source.resolve()), "model_sha256": sha, "block": list(block_hwz)}
        write_json_atomically(run_file, {**run, "value_range": list(value_range)})
    job = BlockJob(
        str(source), variable, str(model_path), trusted, str(temporary), value_range,
        None if tile_shape is None else tuple(int(t) for t in tile_shape),  # type: ignore[arg-type]
    )  # fmt: skip
    blocks = block_grid(lazy.shape, block_hwz)
    finished = {p.name for p in done_dir.iterdir()}
    todo = [(a, b) for a, b in blocks if _marker(a) not in finished]
    report(Progress(len(blocks) - len(todo), len(blocks), "blocks"))
    try:
        loads = _run_blocks(job, todo, done_dir, len(blocks), client, report, cancel, loads_here)
    except VolumeReadError:
        shutil.rmtree(temporary, ignore_errors=True)  # bad input: nothing worth resuming
        raise
    shutil.rmtree(done_dir)
    run_file.unlink()
    publish_directory(temporary, out, overwrite=overwrite)
    provenance = {
        "blockwise": {
            "block": list(block_hwz), "blocks": len(blocks), "resumed_blocks": len(blocks) - len(todo),
            "value_range": list(value_range), "scheduler": scheduler, "model_loads_per_process": loads,
            "job": {k: v for k, v in asdict(job).items() if k in ("tile_shape", "variable")},
        },
        "input": {"path": str(source.resolve()), "shape": list(lazy.shape), "spacing": list(lazy.spacing)},
    }  # fmt: skip
    return BlockwiseResult(out, provenance)
