"""One entry point per direction: :func:`load_volume` / :func:`save_volume` pick the format by file suffix.

Every failure to read becomes a one-line :class:`VolumeReadError` naming the file (the library's own exception is
chained as the cause); every failure to write becomes a :class:`VolumeWriteError` and leaves no partial file.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import psutil

from voxelstudio.core.atomic import same_file, write_atomically, write_directory_atomically
from voxelstudio.core.errors import VolumeReadError, VolumeWriteError
from voxelstudio.core.volume import Spacing, Volume
from voxelstudio.io.variables import (
    DEFAULT_VARIABLE,
    VariableInfo,
    choose_variable,
    ensure_loadable,
    refuse_unusable,
    to_volume_array,
)

_FORMATS = {  # suffix -> (module in voxelstudio.io, whether the format names its arrays)
    ".mat": ("matlab", True),
    ".tif": ("tiff", False),
    ".tiff": ("tiff", False),
    ".npy": ("numpy_", False),
    ".npz": ("numpy_", True),
    ".zarr": ("zarr_", False),  # a folder (Zarr store), .ome.zarr too; array paths are not variable names
}
SUPPORTED_SUFFIXES = tuple(_FORMATS)
_MAX_CAUSE_CHARS = 200


def _format(path: Path, error: type[VolumeReadError] | type[VolumeWriteError]) -> tuple[ModuleType, bool]:
    entry = _FORMATS.get(path.suffix.lower())
    if entry is None and error is VolumeReadError and path.is_dir():
        raise error(path, "is a folder, not a volume file (a Zarr store's name ends in .zarr)")
    if entry is None:
        raise error(
            path, f"unsupported file type {path.suffix or '(no suffix)'!r}; use {', '.join(SUPPORTED_SUFFIXES)}"
        )
    module_name, names_arrays = entry
    return importlib.import_module(f"voxelstudio.io.{module_name}"), names_arrays  # heavy libraries load on use


def import_readers(paths: Iterable[str | Path]) -> None:
    """Import the reader libraries for these files' formats now (unknown suffixes are left to :func:`load_volume`).

    A GUI calls this on its own thread before it loads in a worker: importing a library in a worker thread makes
    hundreds of file-system calls, each of which hands the GIL to the painting GUI thread and waits to get it back
    (the bundled sample took 0.9 s to load beside the window's first paint instead of 0.03 s).
    """
    for path in paths:
        if Path(path).suffix.lower() in _FORMATS:
            _format(Path(path), VolumeReadError)


def _check_readable(path: Path, module: ModuleType | None = None) -> None:
    if not path.exists():
        raise VolumeReadError(path, "file not found")
    if getattr(module, "IS_DIRECTORY", False):
        if not path.is_dir():
            raise VolumeReadError(path, "a Zarr store is a folder, not a file")
        return
    if path.is_dir():
        raise VolumeReadError(path, "is a folder, not a file")
    if not path.is_file():
        raise VolumeReadError(path, "is not a regular file")
    if not os.access(path, os.R_OK):
        raise VolumeReadError(path, "permission denied (the file is not readable)")
    if path.stat().st_size == 0:
        raise VolumeReadError(path, "file is empty (0 bytes)")


def _read_problem(exc: Exception) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied (the file is not readable)"
    if isinstance(exc, MemoryError):
        return "not enough memory to read the file"
    detail = " ".join(str(exc).split()) or "no details"
    if len(detail) > _MAX_CAUSE_CHARS:
        detail = detail[:_MAX_CAUSE_CHARS] + "..."
    return f"cannot read the file; it is truncated, corrupt or of another type ({type(exc).__name__}: {detail})"


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn anything a reader library raises into a VolumeReadError naming ``path``."""
    try:
        yield
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(path, _read_problem(exc)) from exc


def _open_listing(path: str | Path) -> tuple[Path, ModuleType, bool, list[VariableInfo]]:
    path = Path(path)
    module, names_arrays = _format(path, VolumeReadError)
    _check_readable(path, module)
    with _reading(path):
        return path, module, names_arrays, module.list_entries(path)


def volume_name(path: Path) -> str:
    """The file name without its format suffixes: ``scan.ome.zarr`` and ``scan.ome.tif`` -> ``scan``."""
    name = path.name
    for suffix in (*SUPPORTED_SUFFIXES, ".ome"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name.removesuffix(".ome") or path.stem


def output_path(input_path: Path, out_dir: Path, extension: str, *, suffix: str = "") -> Path:
    """``out_dir/<volume name><suffix>.<extension>`` (``scan.ome.tif`` -> ``scan.npy``, ``scan_uncertainty.npy``);
    VolumeWriteError when that would be the input itself."""
    out = Path(out_dir) / f"{volume_name(Path(input_path))}{suffix}.{extension.lstrip('.')}"
    if same_file(out, input_path):
        raise VolumeWriteError(
            out, "is the input file: the output would replace the input; choose another output folder or format"
        )
    return out


def _load_store(path: Path, module: ModuleType, variable: str | None) -> Volume:
    """A Zarr store read whole (block-wise prediction reads it lazily through ``open_lazy`` instead)."""
    with _reading(path):
        lazy = module.open_lazy(path, variable)
        itemsize = np.dtype(lazy.data.dtype).itemsize
        info = VariableInfo(lazy.name, lazy.shape, np.dtype(lazy.data.dtype).name)
        needed = module.voxels(lazy.shape) * (itemsize + 4)
        if needed > psutil.virtual_memory().available:
            raise VolumeReadError(
                path,
                f"{info.shape_text} {info.dtype} needs {needed / 1e9:.1f} GB to load whole; denoise it block-wise"
                " (--format zarr), or open a coarser level (--variable)",
            )
        data = to_volume_array(path, lazy.name, module.compute(path, lazy.data))
    metadata = {"variable": None, "array": lazy.name, "format": module.describe(path), "source_dtype": info.dtype}
    try:  # a damaged lower level does not keep the level read from being shown
        levels = module.levels(path, variable) if metadata["format"] == "ome-zarr" else []
    except VolumeReadError:
        levels = []
    if len(levels) > 1:  # a multiscale image: which level this is, and what else there is
        metadata |= {"level": lazy.name, "levels": tuple(levels)}
    return Volume(data, spacing=lazy.spacing, name=volume_name(path), source=path, metadata=metadata)


def _refuse_unloadable(path: Path, info: VariableInfo) -> None:
    """The checks of ``info`` that need no data: type, rank, memory."""
    refuse_unusable(path, info)
    ensure_loadable(path, info, np.dtype(info.dtype).itemsize)


def _read(path: Path, module: ModuleType, info: VariableInfo) -> np.ndarray:
    """The raw array of ``info`` after :func:`_refuse_unloadable`."""
    _refuse_unloadable(path, info)
    return module.read_array(path, info.name)


def list_variables(path: str | Path) -> list[VariableInfo]:
    """The numeric arrays in a file, in file order (what a variable picker offers); metadata arrays are left out."""
    path, module, _, entries = _open_listing(path)
    return [v for v in entries if v.is_numeric and v.name != module.SPACING_VARIABLE]


def load_volume(path: str | Path, variable: str | None = None) -> Volume:
    """Read a volume from .mat (v4-v7.3), .tif/.tiff (ImageJ, OME), .npy, .npz or a (OME-)Zarr store.

    The array is ``variable`` if given; else ``voxel``; else the only numeric array with >= 3 dimensions. A trailing
    singleton channel (H, W, Z, 1) is dropped; a 2-D image (H, W) becomes one plane (H, W, 1). Values become
    float32; spacing comes from the file's metadata (1.0 per axis when absent). Metadata: ``variable`` (None for
    .npy/.tif, which do not name arrays), ``format`` and ``source_dtype``.
    """
    path, module, names_arrays, entries = _open_listing(path)
    if getattr(module, "IS_DIRECTORY", False):
        return _load_store(path, module, variable)
    name = choose_variable(path, entries, variable, reserved=module.SPACING_VARIABLE or "")
    info = next(v for v in entries if v.name == name)
    with _reading(path):
        data = to_volume_array(path, name, _read(path, module, info))
        spacing = module.read_spacing(path, entries) or (1.0, 1.0, 1.0)
        file_format = module.describe(path)
    metadata = {"variable": name if names_arrays else None, "format": file_format, "source_dtype": info.dtype}
    return Volume(data, spacing=spacing, name=volume_name(path), source=path, metadata=metadata)


def read_variable(path: str | Path, name: str) -> np.ndarray:
    """One array exactly as stored (MATLAB axis order, original dtype, no checks on its values), e.g. for ``info``."""
    path, module, _, entries = _open_listing(path)
    info = next((v for v in entries if v.name == name), None)
    if info is None:
        raise VolumeReadError(path, f"no variable named {name!r}")
    with _reading(path):
        if not info.is_numeric:
            refuse_unusable(path, info)
        ensure_loadable(path, info, np.dtype(info.dtype).itemsize)
        return np.asarray(module.read_array(path, name))


@dataclass(frozen=True)
class FileSummary:
    """What ``voxelstudio info`` shows: everything in a file and which volume :func:`load_volume` would pick."""

    path: Path
    format: str
    variables: tuple[VariableInfo, ...]
    metadata_variable: str | None
    chosen: str | None
    choice_problem: str | None
    spacing: Spacing | None
    spacing_problem: str | None


def summarize_file(path: str | Path, variable: str | None = None) -> FileSummary:
    """Describe a file without loading any array (raises VolumeReadError only when the file cannot be listed)."""
    path, module, _, entries = _open_listing(path)
    with _reading(path):
        file_format = module.describe(path)
    chosen = choice_problem = spacing = spacing_problem = None
    if getattr(module, "IS_DIRECTORY", False):
        try:
            with _reading(path):
                lazy = module.open_lazy(path, variable)
            chosen, spacing = lazy.name, lazy.spacing
        except VolumeReadError as exc:
            choice_problem = spacing_problem = exc.problem
        return FileSummary(path, file_format, tuple(entries), None, chosen, choice_problem, spacing, spacing_problem)
    try:
        chosen = choose_variable(path, entries, variable, reserved=module.SPACING_VARIABLE or "")
    except VolumeReadError as exc:
        choice_problem = exc.problem
    try:
        with _reading(path):
            spacing = module.read_spacing(path, entries) or (1.0, 1.0, 1.0)
    except VolumeReadError as exc:
        spacing_problem = exc.problem
    return FileSummary(
        path, file_format, tuple(entries), module.SPACING_VARIABLE, chosen, choice_problem, spacing, spacing_problem
    )


def check_volume_file(path: str | Path, variable: str | None = None) -> None:
    """VolumeReadError (one line naming ``path``) when its header already shows that no volume can be loaded from
    it: not readable as any format, no single array to choose, an array that cannot be a volume (1-D, complex, not
    numeric, too large for memory), or unreadable voxel-size metadata. Cheap (no array is read), so a batch can
    check every input before it writes its first output; values (NaN) are only seen when the file is loaded."""
    summary = summarize_file(path, variable)
    problem = summary.choice_problem or summary.spacing_problem
    if problem is not None:
        raise VolumeReadError(path, problem)
    info = next((v for v in summary.variables if v.name == summary.chosen), None)
    if info is not None and not summary.path.is_dir():  # a store may exceed memory: it is read block by block
        _refuse_unloadable(summary.path, info)


def save_volume(
    volume: Volume,
    path: str | Path,
    *,
    variable: str | None = None,
    overwrite: bool = False,
    mat_version: str | None = None,
) -> Path:
    """Write ``volume`` atomically to .mat/.tif/.tiff/.ome.tif/.npy/.npz or a .zarr/.ome.zarr store (chosen by
    suffix) with its spacing.

    ``variable`` names the array in .mat/.npz (default: the name it was loaded from where this format allows that
    name, else ``voxel``).
    ``mat_version``: None (v5 compressed, or v7.3 when the volume exceeds 2 GB), "5"/"7" or "7.3".
    An existing file is replaced only when ``overwrite`` is true.
    """
    path = Path(path)
    module, _ = _format(path, VolumeWriteError)
    if mat_version is not None and path.suffix.lower() != ".mat":
        raise VolumeWriteError(path, f"a MAT version ({mat_version}) applies to .mat files only")
    name = variable or volume.metadata.get("variable") or DEFAULT_VARIABLE
    if variable is None and not getattr(module, "usable_variable", lambda _: True)(name):
        name = DEFAULT_VARIABLE  # a name the source format allowed and this one does not ('volume-488' from a .npz)
    if not np.isfinite(volume.data).all():
        raise VolumeWriteError(path, "the volume contains NaN or Inf values; replace them before saving")
    write = module.writer(path, volume.data, volume.spacing, str(name), mat_version)
    if getattr(module, "IS_DIRECTORY", False):
        return write_directory_atomically(path, write, overwrite=overwrite)
    return write_atomically(path, write, overwrite=overwrite)
