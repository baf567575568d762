"""MATLAB 7.3 MAT-files: HDF5 with a 512-byte userblock holding the MATLAB header.

MATLAB stores arrays column-major, so h5py sees every dataset with its axes reversed: a MATLAB (H, W, Z) array is an
HDF5 dataset of shape (Z, W, H). Reading transposes back (the same array ``scipy.io.loadmat`` returns for a v7 file);
writing transposes forward and tags the dataset with ``MATLAB_class`` as MATLAB does.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from voxelstudio.core.errors import VolumeReadError
from voxelstudio.io.variables import VariableInfo, format_bytes

HEADER_PREFIX = b"MATLAB 7.3 MAT-file"
USERBLOCK_BYTES = 512
_HEADER_TEXT_BYTES = 116
IN_MEMORY_MAX_BYTES = 256 << 20
"""Arrays up to this size are written through an in-memory HDF5 image (see :func:`write`)."""
_HEADER_MAGIC = b"\x00" * 8 + b"\x00\x02IM"  # no subsystem data, version 0x0200, little-endian marker

_MATLAB_CLASS_OF_DTYPE = {
    "float64": "double",
    "float32": "single",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
}
_NUMERIC_CLASSES = {*_MATLAB_CLASS_OF_DTYPE.values(), "logical"}


def matlab_header() -> bytes:
    """The 128 bytes MATLAB expects at the start of a 7.3 MAT-file."""
    text = f"MATLAB 7.3 MAT-file, Platform: voxelstudio, Created on: {time.asctime()} HDF5 schema 1.00 ."
    return text.encode("ascii").ljust(_HEADER_TEXT_BYTES, b" ")[:_HEADER_TEXT_BYTES] + _HEADER_MAGIC


@contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    with open(path, "rb") as handle:
        head = handle.read(len(HEADER_PREFIX))
    if head != HEADER_PREFIX:
        raise VolumeReadError(path, "is an HDF5 file but not a MATLAB 7.3 MAT-file (no MATLAB header)")
    with h5py.File(path, "r") as file:
        yield file


def _attribute_text(obj: h5py.HLObject, name: str) -> str | None:
    value = obj.attrs.get(name)
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else b""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _empty_shape(dataset: h5py.Dataset) -> tuple[int, ...]:
    """MATLAB stores an empty array as its size vector with ``MATLAB_empty`` set."""
    if dataset.ndim == 1 and 0 < dataset.size <= 32 and dataset.dtype.kind in "iu":
        shape = tuple(int(n) for n in dataset[()])
        if 0 in shape:
            return shape
    return (0,)


def _dtype_word(dataset: h5py.Dataset, matlab_class: str | None) -> str:
    dtype = dataset.dtype
    if h5py.check_dtype(ref=dtype) is not None:
        return "cell" if matlab_class == "cell" else "reference"
    if dtype.names is not None:
        if {"real", "imag"} <= set(dtype.names):
            return f"complex{2 * dtype['real'].itemsize * 8}"
        return "struct"
    if "MATLAB_object_decode" in dataset.attrs:
        return "object"
    if matlab_class == "char" or dtype.kind in "SUO":
        return "char"
    if matlab_class == "function_handle":
        return "function"
    if matlab_class is not None and matlab_class not in _NUMERIC_CLASSES:
        return matlab_class if matlab_class in ("cell", "struct") else "object"
    if matlab_class == "logical":
        return "bool"
    return dtype.name if dtype.kind in "biuf" else str(dtype)


def _describe(file: h5py.File, name: str) -> VariableInfo:
    if not isinstance(file.get(name, getlink=True), h5py.HardLink):
        return VariableInfo(name, (), "link")
    obj = file[name]
    matlab_class = _attribute_text(obj, "MATLAB_class")
    if isinstance(obj, h5py.Group):
        if "MATLAB_sparse" in obj.attrs:
            return VariableInfo(name, (), "sparse")
        return VariableInfo(name, (), "struct" if matlab_class in (None, "struct") else "object")
    if not isinstance(obj, h5py.Dataset):
        return VariableInfo(name, (), "link")
    if obj.attrs.get("MATLAB_empty"):
        return VariableInfo(name, _empty_shape(obj), _dtype_word(obj, matlab_class))
    return VariableInfo(name, tuple(reversed(obj.shape)), _dtype_word(obj, matlab_class))


def list_entries(path: Path) -> list[VariableInfo]:
    """Every top-level variable (MATLAB's ``#refs#``/``#subsystem#`` bookkeeping groups are skipped)."""
    with _open(path) as file:
        return [_describe(file, name) for name in file if not name.startswith("#")]


def read_array(path: Path, name: str) -> np.ndarray:
    """The variable in MATLAB order (H, W, Z, ...): the transpose of what HDF5 stores."""
    with _open(path) as file:
        dataset = file.get(name)
        if not isinstance(dataset, h5py.Dataset):
            raise VolumeReadError(path, f"variable {name!r} is not an array")
        return np.asarray(dataset[()]).T


def write(path: Path, variables: dict[str, np.ndarray]) -> None:
    """Write numeric arrays (MATLAB order) as a MATLAB 7.3 MAT-file that MATLAB's ``load`` reads.

    HDF5 crashes the process (segfault in ``H5Fclose``) when the disk fills up while it writes, so the file is built
    in memory and written with plain Python I/O (a clean ``OSError``) when the data is at most IN_MEMORY_MAX_BYTES;
    larger arrays are written directly after checking that the folder has room for them uncompressed.
    """
    nbytes = sum(array.nbytes for array in variables.values())
    if nbytes <= IN_MEMORY_MAX_BYTES:
        buffer = io.BytesIO()
        _write_hdf5(buffer, variables)
        image = buffer.getbuffer()
        image[: len(matlab_header())] = matlab_header()
        with open(path, "wb") as handle:
            handle.write(image)
        return
    needed = nbytes + (1 << 20)
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"{os.strerror(errno.ENOSPC)}: needs up to {format_bytes(needed)}, {format_bytes(free)} free",
        )
    _write_hdf5(path, variables)
    with open(path, "r+b") as handle:
        handle.write(matlab_header())


def _write_hdf5(target: Path | io.BytesIO, variables: dict[str, np.ndarray]) -> None:
    # the temporary file is private to this write (and locked by core.atomic): HDF5's own file lock would clash
    with h5py.File(target, "w", userblock_size=USERBLOCK_BYTES, locking=False) as file:
        for name, array in variables.items():
            matlab_class = _MATLAB_CLASS_OF_DTYPE[array.dtype.name]
            big = array.size > 1024
            dataset = file.create_dataset(
                name,
                data=array.T,
                chunks=True if big else None,
                compression="gzip" if big else None,
                shuffle=big,
            )
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
