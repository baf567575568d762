"""NumPy files: ``.npy`` holds one unnamed array and no metadata (spacing 1.0); ``.npz`` holds named arrays and
the voxel size as ``spacing`` = [y, x, z] in micrometres.

Headers are parsed before anything is loaded, pickled (object) arrays are never loaded, and ``.npz`` files are
written uncompressed (fast; microscope noise compresses poorly anyway).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from voxelstudio.core.errors import VolumeReadError, VolumeWriteError
from voxelstudio.core.volume import Spacing
from voxelstudio.io.variables import VariableInfo, format_bytes, parse_spacing

SPACING_VARIABLE = "spacing"
NPY_NAME = "array"
"""The name a ``.npy`` file's single array is listed under."""


def _is_npz(path: Path) -> bool:
    return path.suffix.lower() == ".npz"


def _read_header(handle: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    return tuple(int(n) for n in shape), dtype


def _dtype_word(dtype: np.dtype) -> str:
    if dtype.names is not None or dtype.kind == "V":
        return "struct"
    if dtype.kind == "O":
        return "object"
    if dtype.kind in "SU":
        return "char"
    return dtype.name


def describe(path: Path) -> str:
    return "npz" if _is_npz(path) else "npy"


def list_entries(path: Path) -> list[VariableInfo]:
    """Names, shapes and dtypes from the array headers (no data is read)."""
    if not _is_npz(path):
        with open(path, "rb") as handle:
            shape, dtype = _read_header(handle)
        return [VariableInfo(NPY_NAME, shape, _dtype_word(dtype))]
    entries = []
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.filename.endswith(".npy"):
                with archive.open(member) as handle:
                    shape, dtype = _read_header(handle)
                entries.append(VariableInfo(member.filename[: -len(".npy")], shape, _dtype_word(dtype)))
    return entries


def _check_npy_size(path: Path) -> None:
    with open(path, "rb") as handle:
        shape, dtype = _read_header(handle)
        data_start = handle.tell()
    expected = math.prod(shape) * dtype.itemsize
    present = path.stat().st_size - data_start
    if present < expected:
        raise VolumeReadError(
            path, f"file is truncated: its header promises {format_bytes(expected)} of data, it holds {present} B"
        )


def read_array(path: Path, name: str) -> np.ndarray:
    """One array as stored (pickled object arrays are refused by numpy, never unpickled)."""
    if not _is_npz(path):
        _check_npy_size(path)
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as archive:
        return archive[name]


def read_spacing(path: Path, entries: list[VariableInfo]) -> Spacing | None:
    info = next((v for v in entries if v.name == SPACING_VARIABLE), None) if _is_npz(path) else None
    if info is None:
        return None
    if not info.is_numeric or math.prod(info.shape) != 3:
        raise VolumeReadError(path, f"'spacing' must be 3 numbers [y, x, z], found {info.shape_text} {info.dtype}")
    return parse_spacing(path, read_array(path, SPACING_VARIABLE), "'spacing'")


def usable_variable(name: str) -> bool:
    """Whether a .npz can store the volume under ``name`` (an identifier other than ``spacing``)."""
    return name.isidentifier() and name != SPACING_VARIABLE


def writer(
    path: Path, data: np.ndarray, spacing: Spacing, variable: str, mat_version: str | None
) -> Callable[[Path], None]:
    """A function writing ``data``: ``.npy`` stores only the array, ``.npz`` stores it as ``variable`` + spacing."""
    if not _is_npz(path):
        return lambda target: _save(target, lambda handle: np.save(handle, data, allow_pickle=False))
    if not usable_variable(variable):
        raise VolumeWriteError(path, f"{variable!r} is not a usable array name (an identifier other than 'spacing')")
    arrays = {variable: data, SPACING_VARIABLE: np.asarray(spacing, dtype=np.float64)}
    return lambda target: _save(target, lambda handle: np.savez(handle, **arrays))


def _save(target: Path, save: Callable[[BinaryIO], None]) -> None:
    # an open handle stops numpy from appending its own suffix to the temporary file's name
    with open(target, "wb") as handle:
        save(handle)
