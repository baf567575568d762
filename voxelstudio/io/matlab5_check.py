"""A structural check of MAT v5 files, run before scipy reads them.

scipy's compiled v5 reader trusts the data-type codes in a file: a corrupt code makes it index past its own tables
and crash the whole process (our fuzz test found this; a crash cannot be caught). This module walks every variable's
header, and the numeric data tag of the variable about to be loaded, in plain Python and refuses anything that is not
well formed. Compressed variables are inflated only as far as their headers.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from voxelstudio.core.errors import VolumeReadError

_MI_INT8, _MI_INT32, _MI_UINT32, _MI_MATRIX, _MI_COMPRESSED, _MI_UTF8 = 1, 5, 6, 14, 15, 16
_DATA_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8}
NUMERIC_CLASSES = range(6, 16)  # mxDOUBLE_CLASS .. mxUINT64_CLASS
_MX_CHAR, _MX_OPAQUE = 4, 17
CLASS_NAMES = {
    1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 6: "double", 7: "single", 8: "int8", 9: "uint8",
    10: "int16", 11: "uint16", 12: "int32", 13: "uint32", 14: "int64", 15: "uint64", 16: "function", 17: "opaque",
}  # fmt: skip
"""MATLAB's array classes by their number in the array flags, named as scipy's ``whosmat`` names them."""
_MAX_DIMS = 32
_MAX_NAME_BYTES = 1024


@dataclass(frozen=True)
class V5Header:
    """What a v5 variable's header says, plus (for numeric classes) its real-part data tag."""

    name: str
    matlab_class: int
    is_complex: bool
    dims: tuple[int, ...]
    data_type: int | None
    data_bytes: int | None
    is_logical: bool = False

    @property
    def class_name(self) -> str:
        """``"double"``, ``"logical"``, ``"opaque"`` (a MATLAB string, table or datetime object), …"""
        return "logical" if self.is_logical else CLASS_NAMES.get(self.matlab_class, "unknown")

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape scipy gives the variable (a char array's last dimension is its strings' length)."""
        return self.dims[:-1] if self.matlab_class == _MX_CHAR else self.dims


class _Source:
    """Sequential reads from a byte range of a file, inflating it when it is compressed."""

    def __init__(self, handle: BinaryIO, start: int, length: int, compressed: bool) -> None:
        handle.seek(start)
        self._handle, self._remaining = handle, length
        self._inflate = zlib.decompressobj() if compressed else None
        self._buffer = b""

    def _raw(self, n: int) -> bytes:
        data = self._handle.read(min(n, self._remaining))
        self._remaining -= len(data)
        return data

    def read(self, n: int) -> bytes:
        if self._inflate is None:
            data = self._raw(n)
        else:
            while len(self._buffer) < n:
                source = self._inflate.unconsumed_tail or self._raw(65536)
                if not source:
                    break
                self._buffer += self._inflate.decompress(source, n - len(self._buffer))
            data, self._buffer = self._buffer[:n], self._buffer[n:]
        if len(data) != n:
            raise ValueError("a variable ends early (truncated file)")
        return data


def _padding(n: int) -> int:
    return -n % 8


def _tag(source: _Source, endian: str) -> tuple[int, int, bytes | None]:
    """(data type, byte count, inline data for the 4-byte 'small element' form or None)."""
    word, second = struct.unpack(endian + "2I", source.read(8))
    if word >> 16:
        count = word >> 16
        if count > 4:
            raise ValueError(f"small data element claims {count} bytes")
        return word & 0xFFFF, count, struct.pack(endian + "I", second)[:count]
    return word, second, None


def _header(source: _Source, endian: str) -> V5Header:
    data_type, count, inline = _tag(source, endian)
    if (data_type, count, inline) != (_MI_UINT32, 8, None):
        raise ValueError("array flags are malformed")
    flags = struct.unpack(endian + "2I", source.read(8))[0]
    matlab_class = flags & 0xFF
    if matlab_class == _MX_OPAQUE:  # a MATLAB object (string, table, datetime): a name and no dimensions
        return V5Header(_name(source, endian), matlab_class, False, (), None, None)
    data_type, count, inline = _tag(source, endian)
    # MATLAB writes the dimensions as int32; some writers use uint32, which scipy reads alike
    if data_type not in (_MI_INT32, _MI_UINT32) or inline is not None or count % 4 or not 8 <= count <= 4 * _MAX_DIMS:
        raise ValueError("array dimensions are malformed")
    dims = struct.unpack(endian + f"{count // 4}i", source.read(count))
    source.read(_padding(count))
    if min(dims) < 0:
        raise ValueError(f"negative array dimension {min(dims)}")
    name = _name(source, endian)
    real_type = real_bytes = None
    if matlab_class in NUMERIC_CLASSES and math.prod(dims):
        real_type, real_bytes, _ = _tag(source, endian)
        if real_type not in _DATA_TYPE_BYTES:
            raise ValueError(f"unknown data type {real_type}")
    return V5Header(name, matlab_class, bool(flags & 0x800), dims, real_type, real_bytes, bool(flags & 0x200))


def _name(source: _Source, endian: str) -> str:
    data_type, count, inline = _tag(source, endian)
    if data_type not in (_MI_INT8, _MI_UTF8) or count > _MAX_NAME_BYTES:
        raise ValueError("variable name is malformed")
    name = inline if inline is not None else source.read(count)
    if inline is None:
        source.read(_padding(count))
    return name.decode("latin1")


def read_headers(path: Path) -> list[V5Header]:
    """Every top-level variable's header; VolumeReadError when the file's structure is corrupt."""
    with open(path, "rb") as handle:
        preamble = handle.read(128)
        endian = {b"IM": "<", b"MI": ">"}.get(preamble[126:128])
        if endian is None or len(preamble) < 128:
            raise VolumeReadError(path, "not a MAT v5 file (bad header)")
        size = path.stat().st_size
        position, headers = 128, []
        while position < size:
            handle.seek(position)
            tag = handle.read(8)
            if len(tag) < 8:
                break  # trailing padding
            data_type, count = struct.unpack(endian + "2I", tag)
            if data_type not in (_MI_MATRIX, _MI_COMPRESSED) or count == 0:
                raise VolumeReadError(
                    path, f"corrupt MAT-file: unexpected element (type {data_type}) at byte {position}"
                )
            source = _Source(handle, position + 8, count, compressed=data_type == _MI_COMPRESSED)
            try:
                if data_type == _MI_COMPRESSED:
                    inner_type, _ = struct.unpack(endian + "2I", source.read(8))
                    if inner_type != _MI_MATRIX:
                        raise ValueError(f"compressed element holds type {inner_type}, not a matrix")
                headers.append(_header(source, endian))
            except (ValueError, struct.error, zlib.error) as exc:
                raise VolumeReadError(path, f"corrupt MAT-file: variable at byte {position}: {exc}") from exc
            position += 8 + count
    return headers


def check_numeric_data(path: Path, header: V5Header) -> None:
    """Refuse a numeric variable whose data tag does not match its dimensions (before scipy trusts it)."""
    elements = math.prod(header.dims)
    if header.matlab_class not in NUMERIC_CLASSES or not elements:
        return
    expected = elements * _DATA_TYPE_BYTES.get(header.data_type or 0, 0)
    if header.data_bytes != expected:
        raise VolumeReadError(
            path,
            f"corrupt MAT-file: variable {header.name!r} holds {header.data_bytes} bytes of data "
            f"but its dimensions need {expected}",
        )
