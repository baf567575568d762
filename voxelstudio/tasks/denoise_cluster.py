"""Denoising a batch of files on a dask.distributed cluster (``denoise --scheduler``): small files as whole-file
tasks (:mod:`voxelstudio.tasks.file_cluster`), larger Zarr stores block by block on it
(:mod:`voxelstudio.tasks.blockwise`), larger files of other formats here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voxelstudio.core.progress import CancelToken, Progress, ReportFn
from voxelstudio.tasks.denoise import FileOptions, denoise_file, finished, is_store, within


def whole_file(source: Path, options: FileOptions) -> bool:
    """Whether ``source`` goes to a cluster as one whole-file task: Zarr stores of one block (any store read whole,
    when the output is not a store), other files up to ``WHOLE_FILE_BYTES`` on disk (a worker is sized for small
    scans; larger ones are denoised here, tiled)."""
    if not is_store(source):
        from voxelstudio.tasks.file_cluster import WHOLE_FILE_BYTES

        return source.stat().st_size <= WHOLE_FILE_BYTES
    if options.fmt != "zarr":
        return True
    from voxelstudio.tasks.blockwise import block_count

    return block_count(source, options.block, options.variable) == 1


def denoise_on_cluster(
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    model: Path,
    loaded: Any,
    options: FileOptions,
    report: ReportFn,
    cancel: CancelToken | None,
) -> list[Path]:
    """Small files (:func:`whole_file`) as whole-file tasks on the cluster (:mod:`voxelstudio.tasks.file_cluster`),
    then larger Zarr stores block by block on it and larger other files here; the progress counts files. Returns the
    outputs in input order."""
    from voxelstudio.tasks.file_cluster import dask_client, loads_summary, log, run_whole_files

    assert options.scheduler is not None
    todo = [(s, o) for s, o in zip(inputs, outputs, strict=True) if not finished(o, options, loaded.sha256)]
    whole, by_blocks = [], []
    for item in todo:
        (whole if whole_file(item[0], options) else by_blocks).append(item)
    count = len(inputs) - len(todo)
    report(Progress(count, len(inputs), "files" if not count else f"kept {count} finished"))
    if not todo:
        return list(outputs)  # nothing left: no cluster to start

    def done(path: Path) -> None:
        nonlocal count
        count += 1
        report(Progress(count, len(inputs), f"wrote {path.name}"))

    with dask_client(options.scheduler) as client:
        if whole:
            loads = run_whole_files(
                client, denoise_file, whole, model, loaded.sha256, options, lambda d: done(d.path), cancel
            )
            log.info(loads_summary(loads))
        for source, out in by_blocks:
            if cancel is not None:
                cancel.raise_if_cancelled("denoising")

            blocks = within(report, count, len(inputs), source.name)
            denoise_file(source, out, model, loaded, options, client=client, report=blocks, cancel=cancel)
            done(out)
    return list(outputs)
