"""Atomic file writes: write a temporary file beside the target, flush it to disk, then ``os.replace`` it.

Readers never see a half-written volume, and a failed write leaves neither a partial file nor a temporary one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from voxelstudio.core.errors import VolumeWriteError


def _temporary_sibling(path: Path) -> Path:
    """Create an empty, hidden temporary file in ``path``'s folder that keeps ``path``'s suffix (mode from umask)."""
    for _ in range(100):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _flush_to_disk(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _problem(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"could not write the file ({exc.strerror})"
    return f"could not write the file ({type(exc).__name__}: {exc})"


def write_atomically(path: Path, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Call ``write(temporary_path)`` and move the result onto ``path``.

    Raises :class:`VolumeWriteError` naming ``path`` when it exists and ``overwrite`` is false, when its folder is
    missing, or when writing fails (the cause is chained); the temporary file is always removed on failure.
    """
    path = Path(path)
    if path.is_dir():
        raise VolumeWriteError(path, "is a folder, not a file")
    if path.exists() and not overwrite:
        raise VolumeWriteError(path, "already exists; pass overwrite=True (--overwrite) to replace it")
    if not path.parent.is_dir():
        raise VolumeWriteError(path, f"folder {path.parent} does not exist")
    try:
        temporary = _temporary_sibling(path)
    except OSError as exc:
        raise VolumeWriteError(path, _problem(exc)) from exc
    try:
        write(temporary)
        _flush_to_disk(temporary)
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(exc, VolumeWriteError) or not isinstance(exc, Exception):
            raise
        raise VolumeWriteError(path, _problem(exc)) from exc
    return path
