"""The window's jobs as Qt-free task functions: each builder returns ``task(report, cancel) -> result``.

The GUI's controller starts them on a worker thread and applies their results; the CLI and tests can run them as
they are. Jobs that import a Keras backend run in a fresh child process (:func:`in_child`), so a crash or a stuck GPU
driver cannot take the window with it; the rest run on the worker thread. Modules are imported when a task runs,
on the worker thread, never on the GUI's.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from voxelstudio.core.atomic import write_atomically
from voxelstudio.core.errors import VoxelStudioError, message_of
from voxelstudio.core.progress import CancelToken
from voxelstudio.core.provenance import write_sidecar
from voxelstudio.core.volume import Volume
from voxelstudio.jobs.runner import EventFn, run_isolated

Task = Callable[[EventFn, CancelToken], Any]


def _function(target: str) -> Callable[..., Any]:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def in_child(target: str, /, *, make_folder: Path | None = None, **arguments: Any) -> Task:
    """A task that calls ``target`` ("module:function") with ``arguments`` in a fresh process; ``make_folder`` is
    created first (where the child writes its model)."""

    def run(report: EventFn, cancel: CancelToken) -> Any:
        if make_folder is not None:
            make_folder.mkdir(parents=True, exist_ok=True)
        return run_isolated(_function(target), arguments, report=report, cancel=cancel)

    return run


def in_thread(target: str, /, *, with_progress: bool = False, **arguments: Any) -> Task:
    """A task that calls ``target`` ("module:function") with ``arguments`` on the worker thread (``report`` and
    ``cancel`` passed on when ``with_progress``)."""

    def run(report: EventFn, cancel: CancelToken) -> Any:
        extra = {"report": report, "cancel": cancel} if with_progress else {}
        return _function(target)(**arguments, **extra)

    return run


def level_to_open(path: Path) -> str | None:
    """The level of a multiscale OME-Zarr to open first: the finest the 3-D view draws without reducing it (the
    coarsest when every level is bigger); None (the reader's default, level 0) for other files, single-level stores
    and stores whose lower levels cannot be read (a damaged pyramid still opens at full resolution)."""
    if path.suffix.lower() != ".zarr":
        return None
    from voxelstudio.io.zarr_ import opening_level
    from voxelstudio.render.grid import MAX_DISPLAY_VOXELS

    try:
        level = opening_level(path, MAX_DISPLAY_VOXELS)
    except VoxelStudioError:
        return None
    return None if level is None else level.path


MAX_PLANE_VOXELS = 4096 * 4096
"""A full-resolution plane larger than this (64 MB of float32) is not read: the slice view keeps the coarse one."""


def read_planes(path: Path, level: str, index: tuple[int, int, int]) -> Task:
    """The XY, XZ and YZ planes through voxel ``index`` (y, x, z) of level ``level`` of an OME-Zarr store, cut as
    :func:`voxelstudio.render.slices.orthogonal_slices` cuts them and read lazily (only the chunks they cross):
    {"xy": array, "xz": ..., "yz": ...} without the planes over ``MAX_PLANE_VOXELS``; None when the store cannot be
    read or the read was cancelled (best effort: the views keep what they show, and nothing is reported)."""

    def run(report: EventFn, cancel: CancelToken) -> dict[str, Any] | None:
        from voxelstudio.io.zarr_ import compute, open_lazy
        from voxelstudio.render.slices import PLANES, orthogonal_slices

        try:
            planes = orthogonal_slices(open_lazy(path, level).data, index)
            found = {}
            for plane in PLANES:
                if cancel.cancelled:
                    return None
                lazy = getattr(planes, plane)
                if lazy.size <= MAX_PLANE_VOXELS:
                    found[plane] = compute(path, lazy)
            return found
        except Exception:  # a background nicety: any failure leaves the coarse planes, no dialog
            return None

    return run


def load_volumes(paths: Mapping[str, tuple[Path, str | None]], *, each: bool = False) -> Task:
    """Read each role's (file, variable or level) into a Volume: {role: Volume}. A multiscale store without a chosen
    level opens at :func:`level_to_open`'s level (chosen here, on the worker thread: it reads the store). With
    ``each`` (files opened together, each on its own) a file that cannot be read does not stop the others: the
    result is ({role: Volume}, [one-line problem per file that failed])."""

    def run(report: EventFn, cancel: CancelToken) -> Any:
        from voxelstudio.io import load_volume

        loaded, problems = {}, []
        for role, (path, variable) in paths.items():
            try:
                loaded[role] = load_volume(path, level_to_open(path) if variable is None else variable)
            except (VoxelStudioError, OSError, ValueError) as exc:
                if not each:
                    raise
                problems.append(message_of(exc))
            cancel.raise_if_cancelled("loading")  # Stop keeps what was open: nothing read is applied
        return (loaded, problems) if each else loaded

    return run


def export_volume(volume: Volume, path: Path, provenance: Mapping[str, Any]) -> Task:
    """Write ``volume`` to ``path`` (format from the suffix) and its provenance beside it; returns the path written."""

    def run(report: EventFn, cancel: CancelToken) -> Path:
        from voxelstudio.io import save_volume

        cancel.raise_if_cancelled("export")  # once writing starts it finishes: the write is atomic and short
        written = save_volume(volume, path, overwrite=True)
        write_sidecar(written, provenance)
        return written

    return run


def copy_file(source: Path, path: Path) -> Task:
    """Copy ``source`` to ``path`` atomically (a model the user saves); returns the path written."""
    return lambda report, cancel: write_atomically(path, lambda temporary: shutil.copyfile(source, temporary),
                                                   overwrite=True)  # fmt: skip


def denoise(raw: Volume, model_path: Path | None, tta: bool) -> Task:
    return in_child("voxelstudio.tasks.denoise:denoise_volume", volume=raw, model_path=model_path, tta=tta)


def deconvolve(raw: Volume, iterations: int) -> Task:
    return in_thread("voxelstudio.tasks.deconvolve:richardson_lucy_volume", with_progress=True, volume=raw,
                     iterations=iterations)  # fmt: skip


def evaluate(prediction: Volume, target: Volume, raw: Volume | None) -> Task:
    return in_thread("voxelstudio.tasks.evaluate:evaluate_volumes", pred=prediction, target=target, raw=raw)


def check_model(path: Path) -> Task:
    """Load the denoiser at ``path`` in a child process (a usable model or a clear error); returns ``path``."""
    check = in_child("voxelstudio.jobs.runner:check_model", path=path)

    def run(report: EventFn, cancel: CancelToken) -> Path:
        check(report, cancel)
        return path

    return run


def environment(disk: Path, qt_probe: str) -> Task:
    """``voxelstudio doctor``'s report as text (it starts a child process per backend)."""

    def run(report: EventFn, cancel: CancelToken) -> str:
        from voxelstudio.tasks.doctor import environment_report, format_report

        return format_report(environment_report(disk_path=disk, qt_probe=qt_probe, cancel=cancel))

    return run
