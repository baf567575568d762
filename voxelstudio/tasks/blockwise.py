"""Block-wise denoising of a (OME-)Zarr store into an OME-Zarr store: memory bounded by one block, resumable,
optionally spread over a dask.distributed cluster.

Each block of the output (one output chunk) is predicted as :mod:`voxelstudio.tasks.block_predict` describes, so the
result equals whole-volume tiled prediction at the same normalisation range (with ``tta`` too: the mean and the
spread of the 8 transforms, the spread written as a second store). All blocks share one normalisation range,
computed once from a sample of the volume's chunks (:mod:`voxelstudio.tasks.block_sample`). When every block is done,
the lower-resolution levels of the multiscale pyramid are written (:mod:`voxelstudio.io.zarr_pyramid`).

The output is written into a hidden temporary store beside the target (``.<name>.<8 hex>.partial``, named from the
input, model and block shape so that ``resume`` finds it); a finished block is recorded as a marker file in its
``.voxelstudio-done`` folder (:mod:`voxelstudio.tasks.blockwise_runs`). Only when every block is done is the store
renamed to its final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.atomic import (
    held_by_a_writer,
    holding,
    publish_directory,
    temporary_directory_name,
    write_json_atomically,
)
from voxelstudio.core.errors import NonFiniteValuesError, VolumeReadError, VolumeWriteError, VoxelStudioError
from voxelstudio.core.memory import release_free_heap
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.provenance import denoise_provenance, input_record, model_record
from voxelstudio.core.volume import UNKNOWN_SPACING
from voxelstudio.io import zarr_
from voxelstudio.io.api import volume_name
from voxelstudio.io.zarr_pyramid import write_pyramid
from voxelstudio.tasks.block_predict import (
    UNCERTAINTY_FOLDER,
    BlockJob,
    block_grid,
    cached_model,
    predict_block,
)
from voxelstudio.tasks.block_sample import sample_range
from voxelstudio.tasks.blockwise_runs import (
    DONE,
    RUN,
    input_fingerprint,
    mark_published_by,
    marker,
    other_runs,
    published_by,
    resumable_run,
)
from voxelstudio.tasks.denoise_checks import check_model_spacing

log = logging.getLogger(__name__)
Shape3 = tuple[int, int, int]
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class BlockwiseResult:
    path: Path
    provenance: dict[str, Any]


def connect(address: str) -> Any:
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
        (done_dir / marker(start)).touch()
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
    with _worker_warnings(client):
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


@contextlib.contextmanager
def _worker_warnings(client: Any) -> Iterator[None]:
    """Show the block tasks' warnings (such as a memory limit the smallest tiles cannot meet) here while they run:
    forwarded from workers in other processes. Workers in this process log here already (forwarding theirs would
    send each record round for ever), so then nothing is forwarded."""
    name = predict_block.__module__
    if os.getpid() in client.run(os.getpid).values():
        yield
        return
    client.forward_logging(name, level=logging.WARNING)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # the cluster may be gone (the error being raised says why)
            client.unforward_logging(name)


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
    loaded: Any = None,
    variable: str | None = None,
    trusted: bool = False,
    block: Sequence[int] | None = None,
    tile_shape: Sequence[int] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    scheduler: str | None = None,
    client: Any = None,
    uncertainty_out: str | Path | None = None,
    memory_limit: int | None = None,
    voxel_size: tuple[float, float, float] | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> BlockwiseResult:
    """Denoise the volume in a Zarr store block by block into the OME-Zarr store ``out`` (see the module notes).

    ``loaded``: the model at ``model_path`` when the caller has loaded it already (it is not loaded again here).
    ``block`` (H, W, Z) is also the output's chunk shape (default: the input's chunks when 3-D, else 256x256x64);
    ``scheduler`` is a dask.distributed scheduler address (None: in this process), ``client`` a dask Client already
    connected to it (then kept open; None: connect here and close at the end); ``resume`` continues an
    interrupted run of the same input, model and block shape; ``uncertainty_out`` (a store path) asks for
    test-time augmentation, whose per-voxel spread goes there; ``memory_limit`` (bytes) sizes the tiles so that
    each process predicting blocks stays under it (slower: smaller tiles compute more of the overlap); ``voxel_size``
    (y, x, z µm) replaces the store's (for a model that takes the voxel size, and in the output). Returns the
    output path and provenance.
    """
    source, out = Path(source), Path(out)
    spread_out = None if uncertainty_out is None else Path(uncertainty_out)
    for target in filter(None, (out, spread_out)):
        # an uncertainty store without its output may be what this job's interrupted run published, which resume
        # replaces: _denoise_store checks that once the job is known
        resumed_spread = resume and target == spread_out and not out.exists()
        if target.exists() and not overwrite and not resumed_spread:
            raise VolumeWriteError(target, "already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise VolumeWriteError(out, f"folder {out.parent} does not exist")
    lazy = zarr_.open_lazy(source, variable)
    if voxel_size is not None:
        lazy = dataclasses.replace(lazy, spacing=tuple(float(v) for v in voxel_size))
    own_client = client is None and scheduler is not None
    if own_client:
        client = connect(scheduler)  # before anything is written
    try:
        if loaded is None:  # this very file, not one an earlier call in this process loaded from the same path
            from voxelstudio.ml.persistence import file_sha256

            model, fresh = cached_model(str(model_path), trusted, file_sha256(model_path))
        else:
            model, fresh = cached_model(str(model_path), trusted, loaded=loaded)
        if model.train_config is None:
            raise VoxelStudioError(f"{model_path}: has no VoxelStudio training metadata")
        check_model_spacing(lazy.spacing, model, str(source))
        settings = _Settings(
            variable,
            trusted,
            block,
            tile_shape,
            resume,
            overwrite,
            scheduler,
            spread_out,
            memory_limit,
            spacing_given=voxel_size is not None,
        )
        loads = {str(os.getpid()): 1} if fresh else {}
        return _denoise_store(source, out, lazy, client, Path(model_path), model, loads, settings, report, cancel)
    finally:
        if own_client:
            client.close()


def output_chunks(lazy: zarr_.LazyVolume, block: Sequence[int] | None) -> tuple[int, int, int]:
    """The output's (Z, H, W) chunks, one per block: ``block`` (H, W, Z), else :func:`default_block`."""
    if block is None and len(lazy.array.chunks) == 3 and lazy.axes == ("z", "y", "x"):
        block = default_block(lazy.array.chunks)
    return zarr_.chunks_for(lazy.shape, block)


def default_block(chunks_zyx: Sequence[int]) -> tuple[int, int, int]:
    """A block (H, W, Z) of whole input chunks, as many along each axis as fit in the default chunk
    (``zarr_.DEFAULT_CHUNKS_ZYX``); an axis whose chunks are longer gets the default length. Each block is predicted
    with a halo of the network's reach, so blocks of the input's own chunks when small or thin (one plane, 32^3)
    recomputed it 16-90 times over; and a huge chunk would have been one huge block."""
    zyx = [
        default if chunk >= default else chunk * (default // chunk)
        for chunk, default in zip(chunks_zyx, zarr_.DEFAULT_CHUNKS_ZYX, strict=True)
    ]
    return (zyx[1], zyx[2], zyx[0])


def block_count(source: str | Path, block: Sequence[int] | None, variable: str | None = None) -> int:
    """How many blocks the store at ``source`` is denoised in (reads metadata only)."""
    lazy = zarr_.open_lazy(source, variable)
    chunks = output_chunks(lazy, block)
    return len(block_grid(lazy.shape, (chunks[1], chunks[2], chunks[0])))


@dataclass(frozen=True)
class _Settings:
    variable: str | None
    trusted: bool
    block: Sequence[int] | None
    tile_shape: Sequence[int] | None
    resume: bool
    overwrite: bool
    scheduler: str | None
    spread_out: Path | None
    memory_limit: int | None = None
    spacing_given: bool = False


def _denoise_store(
    source: Path,
    out: Path,
    lazy: zarr_.LazyVolume,
    client: Any,
    model_path: Path,
    model: Any,
    loads: dict[str, int],
    settings: _Settings,
    report: ReportFn,
    cancel: CancelToken | None,
) -> BlockwiseResult:
    from voxelstudio.ml.inference import TTA_TRANSFORMS, runtime_info

    chunks = output_chunks(lazy, settings.block)
    block_hwz: Shape3 = (chunks[1], chunks[2], chunks[0])
    tta = settings.spread_out is not None
    tile = None if settings.tile_shape is None else tuple(int(t) for t in settings.tile_shape)
    known = settings.spacing_given or tuple(lazy.spacing) != UNKNOWN_SPACING  # what the model's shift scales to
    key = f"{source.resolve()}|{settings.variable}|{model.sha256}|{block_hwz}|{tile}|{tta}|{lazy.spacing}|{known}"
    key += f"|{lazy.shape}|{np.dtype(lazy.data.dtype)}"  # a store re-exported at the same path is another job
    job_id = hashlib.sha256(key.encode()).hexdigest()[:8]
    spread_out = settings.spread_out
    theirs = spread_out is not None and spread_out.exists() and not published_by(spread_out, job_id)
    if theirs and not settings.overwrite:  # another job's (or the user's) store is never replaced unasked
        raise VolumeWriteError(spread_out, "already exists; pass --overwrite to replace it")
    temporary = temporary_directory_name(out, job_id)
    done_dir, run_file, spread_dir = temporary / DONE, temporary / RUN, temporary / UNCERTAINTY_FOLDER
    if temporary.exists() and held_by_a_writer(temporary):
        raise VolumeWriteError(
            out, "another run of the same job is writing it now; wait for it to end (or stop it and use --resume)"
        )
    run = resumable_run(run_file) if settings.resume else None
    fingerprint = input_fingerprint(source, lazy)
    if run is not None and run.get("input_fingerprint", fingerprint) != fingerprint:
        raise ValueError(
            f"{source}: written again since the interrupted run (its finished blocks are of the old data); run "
            "without --resume to start over"
        )
    others = other_runs(out, temporary)
    if settings.resume and run is None and others:
        warnings.warn(
            f"{out}: the interrupted run found ({others[0].name}) had other settings (block, tile, model or input), "
            "so it is not resumed; this run starts over and removes it when it ends",
            stacklevel=2,
        )
    if temporary.exists() and run is None:
        shutil.rmtree(temporary)  # an earlier run of the same job that is not to be resumed (or unreadable)
    if run is not None:
        value_range = (float(run["value_range"][0]), float(run["value_range"][1]))
    else:
        value_range = sample_range(model.normalizer, lazy, source)  # before any folder: NaN in the input stops here
    with holding(temporary):  # locked: a concurrent writer into the folder leaves it alone
        if run is None:
            zarr_.create_store(temporary, lazy.shape, lazy.spacing, volume_name(out), chunks, lazy.origin)
            if settings.spread_out is not None:
                spread_name = volume_name(settings.spread_out)
                zarr_.create_store(spread_dir, lazy.shape, lazy.spacing, spread_name, chunks, lazy.origin)
                mark_published_by(spread_dir, job_id)
            done_dir.mkdir()
            run = {"input": str(source.resolve()), "model_sha256": model.sha256, "block": list(block_hwz),
                   "input_fingerprint": fingerprint}  # fmt: skip
            write_json_atomically(run_file, {**run, "value_range": list(value_range)})
        absolute = [str(Path(p).resolve()) for p in (source, model_path, temporary)]  # as workers elsewhere see them
        job = BlockJob(absolute[0], settings.variable, absolute[1], settings.trusted, absolute[2], value_range,
                       tile, tta, model.sha256, settings.memory_limit,  # type: ignore[arg-type]
                       chunk_voxels=math.prod(block_hwz), spacing=lazy.spacing,
                       known_spacing=lazy.spacing if known else None)  # fmt: skip
        blocks = block_grid(lazy.shape, block_hwz)
        finished = {marker(a) for a, _ in blocks} if run.get("complete") else {p.name for p in done_dir.iterdir()}
        todo = [(a, b) for a, b in blocks if marker(a) not in finished]
        report(Progress(len(blocks) - len(todo), len(blocks), "blocks"))
        try:
            loads = _run_blocks(job, todo, done_dir, len(blocks), client, report, cancel, loads)
        except NonFiniteValuesError:
            shutil.rmtree(temporary, ignore_errors=True)  # bad values: the input must change, nothing to resume
            raise
        except VolumeReadError as exc:  # perhaps passing (a network file system, a chunk being copied): keep the work
            kept = sum(1 for _ in done_dir.iterdir())
            raise VolumeReadError(
                source, f"{exc.problem}; the {kept} finished block(s) are kept: once it reads, run again with --resume"
            ) from exc
        report(Progress(None, None, "writing the lower-resolution levels"))
        release_free_heap()  # the last block's buffers, before the levels' own
        levels = write_pyramid(temporary)
        if settings.spread_out is not None and spread_dir.exists():  # gone: published before an interruption
            write_pyramid(spread_dir)
            publish_directory(spread_dir, settings.spread_out, overwrite=settings.overwrite or settings.resume)
        # from here on --resume only publishes (removing the markers, one per block, takes a while)
        write_json_atomically(run_file, {**run, "value_range": list(value_range), "complete": True})
        shutil.rmtree(done_dir, ignore_errors=True)
        run_file.unlink()
        publish_directory(temporary, out, overwrite=settings.overwrite)
    for other in other_runs(out, temporary):  # superseded: otherwise hidden, perhaps gigabytes, for good
        if not held_by_a_writer(other):
            shutil.rmtree(other, ignore_errors=True)
    transforms = len(TTA_TRANSFORMS) if tta else 1
    tiling = {"tile_shape": None if tile is None else list(tile), "tta": tta, "transforms": transforms}
    record = input_record(source, lazy.name, lazy.shape, lazy.spacing, settings.variable)
    applied = model.for_spacing(job.known_spacing)  # the input shift as the blocks applied it
    provenance = denoise_provenance(record, model_path, model_record(applied), tiling, runtime_info())
    provenance["blockwise"] = {
        "block": list(block_hwz), "blocks": len(blocks), "resumed_blocks": len(blocks) - len(todo),
        "value_range": list(value_range), "scheduler": settings.scheduler, "model_loads_per_process": loads,
        "levels": levels, "memory_limit": settings.memory_limit,
    }  # fmt: skip
    if settings.spread_out is not None:
        provenance["uncertainty_output"] = str(settings.spread_out.resolve())
    return BlockwiseResult(out, provenance)
