"""What a volume file holds, which array becomes the volume, and the checks an array must pass to become one.

Every format lists its arrays as :class:`VariableInfo` (shape in MATLAB order (H, W, Z, ...), dtype as a numpy name
for numeric arrays or a word such as ``"cell"``/``"struct"``/``"char"``/``"complex128"`` for everything else) and hands
the chosen raw array to :func:`to_volume_array`, so all formats accept and refuse the same things with the same words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from voxelstudio.core.errors import VolumeReadError
from voxelstudio.core.volume import Spacing

DEFAULT_VARIABLE = "voxel"
"""The variable the original bead data sets use; chosen first when a file has it."""

NAME_ONE = (
    "--variable NAME with info, convert or denoise; variable=... in Python; for other commands, "
    "`voxelstudio convert FILE OUT --variable NAME` writes it alone"
)
"""How to pick an array or a plane, for messages: ``info``, ``convert`` and ``denoise`` take ``--variable``."""

NUMERIC_DTYPES = frozenset(
    {"bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float16", "float32", "float64"}
)
"""dtypes a volume may be stored as; all become float32 (int64/uint64 beyond 2**24 lose precision, never range)."""

MAX_COMPRESSION_RATIO = 2000
"""A header claiming more than this many times the file's size is corrupt (deflate peaks near 1032:1)."""

_SMALL_CLAIM_BYTES = 64 * 2**20  # claims below this are never refused for their ratio


@dataclass(frozen=True)
class VariableInfo:
    """One array in a volume file: its name, shape (MATLAB order) and dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def is_numeric(self) -> bool:
        return self.dtype in NUMERIC_DTYPES

    @property
    def is_volume(self) -> bool:
        """Numeric, non-empty and 3-D, a 2-D image (one plane), or 4-D with a single trailing channel."""
        return self.is_numeric and _shape_problem(self.shape) is None

    @property
    def shape_text(self) -> str:
        return format_shape(self.shape)


def format_shape(shape: Sequence[int]) -> str:
    """``(5, 7, 3)`` -> ``"5x7x3"`` (``"scalar"`` for 0-D)."""
    return "x".join(str(n) for n in shape) if len(shape) else "scalar"


def format_bytes(n: float) -> str:
    """A byte count for people: ``"840 B"``, ``"8.0 TB"``."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    index = 0
    while abs(n) >= 1000 and index < len(units) - 1:
        n /= 1000
        index += 1
    return f"{n:.0f} B" if index == 0 else f"{n:.1f} {units[index]}"


def choose_variable(path: Path, variables: Sequence[VariableInfo], requested: str | None, *, reserved: str = "") -> str:
    """The variable to load: ``requested``; else ``voxel``; else the only numeric array with >= 3 dims (or the only
    array of any kind, so that the error names its actual problem).

    ``reserved`` names a metadata variable (the spacing) that is never offered as a volume.
    """
    names = {v.name: v for v in variables}
    offered = [v for v in variables if v.name != reserved]
    if requested is not None:
        if requested not in names or requested == reserved:
            raise VolumeReadError(path, f"no variable named {requested!r}; available: {_describe(offered)}")
        return requested
    if DEFAULT_VARIABLE in names:
        return DEFAULT_VARIABLE
    candidates = [v for v in offered if v.is_numeric and len(v.shape) >= 3]
    if len(candidates) == 1:
        return candidates[0].name
    if not offered:
        raise VolumeReadError(path, "the file contains no arrays")
    if not candidates and len(offered) == 1:
        return offered[0].name  # the only array: let the checks say precisely what is wrong with it
    if not candidates:
        raise VolumeReadError(path, f"no 3-D numeric array to use as the volume; found: {_describe(offered)}")
    raise VolumeReadError(path, f"several arrays could be the volume: {_describe(candidates)}; name one ({NAME_ONE})")


def _describe(variables: Sequence[VariableInfo]) -> str:
    if not variables:
        return "nothing"
    return ", ".join(f"{v.name} ({v.shape_text} {v.dtype})" for v in variables)


def refuse_unusable(path: Path, info: VariableInfo) -> None:
    """Raise when the listing alone shows the variable cannot be a volume (before anything is loaded)."""
    what = f"variable {info.name!r}"
    if info.dtype.startswith("complex"):
        raise VolumeReadError(path, f"{what} is complex ({info.dtype}); only real values are supported")
    if not info.is_numeric:
        raise VolumeReadError(path, f"{what} is {_kind_words(info.dtype)}, not a numeric array")
    _check_shape(path, what, info.shape)


def _kind_words(dtype: str) -> str:
    words = {
        "cell": "a cell array",
        "struct": "a struct",
        "char": "text (char)",
        "sparse": "a sparse matrix",
        "object": "an object array (MATLAB objects or Python objects)",
        "reference": "an HDF5 object reference",
        "function": "a function handle",
        "link": "a link to another file or object",
    }
    return words.get(dtype, f"of unsupported type {dtype}")


def is_single_plane(shape: Sequence[int]) -> bool:
    """A 2-D image of at least 2x2 pixels: read as a volume of one plane (MATLAB drops a trailing Z of 1 on save)."""
    return len(shape) == 2 and min(shape) > 1


def _shape_problem(shape: tuple[int, ...]) -> str | None:
    if any(n == 0 for n in shape):
        return f"is empty (shape {format_shape(shape)})"
    if len(shape) == 3 or (len(shape) == 4 and shape[3] == 1) or is_single_plane(shape):
        return None
    rank = "a vector" if len(shape) == 2 else f"{len(shape)}-D"
    return (
        f"has shape {format_shape(shape)} ({rank}); a volume must be 3-D (H, W, Z), a 2-D image (read as one plane) "
        "or 4-D with a single trailing channel"
    )


def _check_shape(path: Path, what: str, shape: tuple[int, ...]) -> None:
    problem = _shape_problem(shape)
    if problem is not None:
        raise VolumeReadError(path, f"{what} {problem}")


def ensure_loadable(path: Path, info: VariableInfo, itemsize: int) -> None:
    """Refuse, before allocating, arrays that cannot fit in memory or that the file is far too small to hold."""
    elements = math.prod(info.shape)
    stored = elements * itemsize
    needed = stored + elements * 4  # the stored array plus its float32 copy
    available = psutil.virtual_memory().available
    if needed > available:
        raise VolumeReadError(
            path,
            f"variable {info.name!r} ({format_shape(info.shape)} {info.dtype}) needs {format_bytes(needed)} "
            f"of memory to load but only {format_bytes(available)} is available",
        )
    if path.is_dir():  # a Zarr store: chunks never written read as the fill value, so its size proves nothing
        return
    file_size = path.stat().st_size
    if stored > _SMALL_CLAIM_BYTES and stored > MAX_COMPRESSION_RATIO * file_size:
        raise VolumeReadError(
            path,
            f"header claims {format_bytes(stored)} of data for {info.name!r} but the file is only "
            f"{format_bytes(file_size)}; the file is corrupt",
        )


def to_volume_array(path: Path, name: str, array: Any) -> np.ndarray:
    """Check a loaded array and return it as a read-only C-ordered float32 (H, W, Z) array.

    At most one copy is made (the float32 conversion); float32 C-ordered input is used as is.
    """
    what = f"variable {name!r}"
    if not isinstance(array, np.ndarray):
        raise VolumeReadError(path, f"{what} is a {type(array).__name__}, not a numeric array")
    dtype = array.dtype
    if dtype.names is not None or dtype.kind == "V":
        raise VolumeReadError(path, f"{what} is a struct/record array, not a numeric array")
    if dtype.kind == "O":
        raise VolumeReadError(path, f"{what} holds Python/MATLAB objects (cell or object array), not numbers")
    if dtype.kind == "c":
        raise VolumeReadError(path, f"{what} is complex ({dtype}); only real values are supported")
    if dtype.kind not in "biuf":
        raise VolumeReadError(path, f"{what} has unsupported type {dtype} (text or dates are not volumes)")
    _check_shape(path, what, array.shape)
    if array.ndim == 4:
        array = array[..., 0]
    elif array.ndim == 2:
        array = array[..., np.newaxis]
    with np.errstate(over="ignore", invalid="ignore"):
        data = np.asarray(array, dtype=np.float32, order="C")
    if not np.isfinite(data).all():
        if dtype.kind == "f" and not np.isfinite(array).all():
            raise VolumeReadError(path, f"{what} contains NaN or Inf values")
        raise VolumeReadError(path, f"{what} has values beyond the float32 range (about +-3.4e38)")
    data.flags.writeable = False  # lets Volume take it without another copy
    return data


def parse_spacing(path: Path, value: Any, where: str) -> Spacing:
    """Validate a stored (y, x, z) voxel size."""
    try:
        values = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise VolumeReadError(path, f"{where} is not numeric") from exc
    if values.size != 3 or not np.all(np.isfinite(values)) or not np.all(values > 0):
        raise VolumeReadError(path, f"{where} must be three positive numbers (y, x, z), got {values.tolist()}")
    return float(values[0]), float(values[1]), float(values[2])
