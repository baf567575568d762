"""Atomic file writes: write a temporary file beside the target, flush it to disk, then ``os.replace`` it.

Readers never see a half-written volume, and a failed write leaves neither a partial file nor a temporary one.
A process killed mid-write (``kill -9``, power loss) cannot clean up: its temporary stays behind, hidden and named
``.<name>.<8 hex>.partial``, so that it never ends in an output's suffix (``find -name '*.npy'``, ``os.listdir`` and
batch scripts do not take it for a result), and :func:`is_temporary` recognises it. Writers that insist on a suffix
(Keras saves only to ``*.keras``) get ``.<name>.<8 hex>.partial/<name>`` instead: a hidden temporary folder holding
the file under its final name. The writer holds an exclusive ``flock`` on its temporary (file or folder) while it
writes, so the next write into the same folder, of any file, tells a dead writer's leftovers (unlocked) from a live
one's and removes them (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from voxelstudio.core.errors import VolumeWriteError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so leftovers are only recognised, never removed
    fcntl = None  # type: ignore[assignment]

_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{8}\.partial")
_OLD_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{8}\.tmp(\.[^.]+)?")  # what versions up to 0.x left behind
_SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")  # numpy's tofile (np.save, tifffile) on a full disk
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_FRESH_S = 1.0  # an empty temporary younger than this may belong to a writer that has not locked it yet
SUFFIX_BOUND = frozenset({".keras"})
"""Suffixes whose writers refuse any other file name: written inside a hidden temporary folder instead."""


def _temporary_name(path: Path, token: str) -> str:
    return f".{path.name}.{token}.partial"


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is named like a temporary of :func:`write_atomically` (never a finished output), or lies in
    such a temporary folder."""
    path = Path(path)
    return any(_TEMPORARY.fullmatch(part) or _OLD_TEMPORARY.fullmatch(part) for part in path.parts[-2:])


RESUMABLE = "voxelstudio-run.json"
"""A temporary folder holding this file is a resumable run's state (block-wise prediction): it stays for --resume
(and while its run writes into it), never swept as a dead writer's leftover."""


def _is_stale(candidate: Path) -> bool:
    """True (with the file or folder removed) when no live writer holds ``candidate``'s lock and it is not a
    resumable run's state."""
    if (candidate / RESUMABLE).is_file():
        return False
    try:
        fd = os.open(candidate, os.O_RDONLY)
    except OSError:
        return False
    try:
        if _writer_holds(fd):
            return False
        info = os.fstat(fd)
        folder = candidate.is_dir()
        empty = not any(candidate.iterdir()) if folder else info.st_size == 0
        if empty and time.time() - info.st_mtime < _FRESH_S:
            return False
        if folder:
            shutil.rmtree(candidate)
        else:
            candidate.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also releases the lock


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries that killed writers left in ``path``'s folder (``path`` itself when it is a folder),
    whichever file they were writing; returns what was removed. Live writers' temporaries stay."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if fcntl is None or not folder.is_dir():
        return []
    try:
        candidates = sorted(
            p for p in folder.iterdir() if _TEMPORARY.fullmatch(p.name) or _OLD_TEMPORARY.fullmatch(p.name)
        )
    except OSError:
        return []
    return [p for p in candidates if _is_stale(p)]


def held_by_a_writer(folder: Path) -> bool:
    """Whether a live writer (this process or another) holds ``folder``'s lock (:func:`holding`)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _writer_holds(fd)
    finally:
        os.close(fd)  # also releases a lock taken here


def _writer_holds(fd: int) -> bool:
    """Whether another open file (a live writer) holds the lock on ``fd``'s file; if not, ``fd`` now holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    return False


def _lock(fd: int) -> None:
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _temporary_sibling(path: Path) -> tuple[Path, Path, int]:
    """Create a hidden temporary in ``path``'s folder: an empty file (mode from umask), or, for a suffix-bound
    format, a folder to write ``path``'s name into.

    Returns what the writer writes to, what to remove on failure, and an open descriptor holding an exclusive lock
    on the latter (until the descriptor is closed).
    """
    for _ in range(100):
        candidate = path.with_name(_temporary_name(path, secrets.token_hex(4)))
        try:
            if path.suffix.lower() in SUFFIX_BOUND:
                candidate.mkdir(mode=0o700)
                fd = os.open(candidate, os.O_RDONLY)
                _lock(fd)
                return candidate / path.name, candidate, fd
            fd = os.open(candidate, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        _lock(fd)
        return candidate, candidate, fd
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _flush_to_disk(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _problem(exc: BaseException, folder: Path) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        detail = exc.strerror if exc.strerror and exc.strerror.startswith(os.strerror(exc.errno)) else None
        return f"could not write the file ({detail or os.strerror(exc.errno)})"
    short = _SHORT_WRITE.search(text) if isinstance(exc, OSError) else None
    if short is not None:
        requested, written = int(short.group(1)), int(short.group(2))
        with contextlib.suppress(OSError):
            if shutil.disk_usage(folder).free < requested - written:
                return f"could not write the file ({os.strerror(errno.ENOSPC)})"
        return f"could not write the file (the write stopped after {written} of {requested} bytes)"
    if "No space left on device" in text:
        return f"could not write the file ({os.strerror(errno.ENOSPC)})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"could not write the file ({exc.strerror})"
    return f"could not write the file ({type(exc).__name__}: {exc})"


def check_not_an_input(path: str | Path, inputs: dict[str, str | Path | None]) -> None:
    """VolumeWriteError when the output ``path`` is one of ``inputs`` (what it is -> its path): even with
    --overwrite, writing there would destroy what the command reads (a .mat's other variables, the PSF or model
    it started from)."""
    out = Path(path)
    for what, given in inputs.items():
        if given is not None and same_file(out, given):
            raise VolumeWriteError(out, f"is the {what}: the output would replace it; choose another name")


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same resolved path, or (both existing) one file reached
    through a hard link or another mount of its folder."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def check_destination(path: str | Path, *, overwrite: bool, hint: str = "pass --overwrite") -> Path:
    """``path`` as a Path when a file may be written there; a one-line :class:`VolumeWriteError` naming it when it
    is a folder, exists and ``overwrite`` is false (the message says to ``hint`` to replace it), or its folder is
    missing or not writable. Long jobs call it before they start, so a bad output path costs no work."""
    path = Path(path)
    if path.is_dir():
        raise VolumeWriteError(path, "is a folder, not a file")
    if path.exists() and not overwrite:
        raise VolumeWriteError(path, f"already exists; {hint} to replace it")
    if path.parent.exists() and not path.parent.is_dir():
        raise VolumeWriteError(path, f"{path.parent} is a file, not a folder")
    if not path.parent.is_dir():
        raise VolumeWriteError(path, f"folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise VolumeWriteError(path, f"folder {path.parent} is not writable")
    return path


def check_output_folder(path: str | Path) -> Path:
    """``path`` as a Path when files may be written into it (it exists as a folder, or can be made); a one-line
    :class:`VolumeWriteError` naming it when it or a parent is a file, or the nearest existing parent is not
    writable. Called before long jobs, like :func:`check_destination`."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
    if not existing.is_dir():
        where = "" if existing == path else f" (its parent {existing} is a file)"
        raise VolumeWriteError(path, f"cannot be a folder{where}" if where else "is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise VolumeWriteError(path, f"folder {existing} is not writable")
    return path


def write_atomically(path: Path, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Call ``write(temporary_path)`` and move the result onto ``path``.

    Raises :class:`VolumeWriteError` naming ``path`` when it exists and ``overwrite`` is false, when its folder is
    missing, or when writing fails (the cause is chained; a full disk says "No space left on device"); the temporary
    file is always removed on failure. Temporaries that killed writers left in ``path``'s folder are removed first.
    """
    path = check_destination(path, overwrite=overwrite)
    remove_stale_temporaries(path.parent)
    try:
        temporary, holder, fd = _temporary_sibling(path)
    except OSError as exc:
        raise VolumeWriteError(path, _problem(exc, path.parent)) from exc
    try:
        write(temporary)
        _flush_to_disk(temporary)  # by path: a writer may have replaced the file the descriptor refers to
        os.replace(temporary, path)
        if holder != temporary:
            holder.rmdir()
    except BaseException as exc:
        problem = _problem(exc, path.parent)  # before the temporary file's space is freed
        with contextlib.suppress(OSError):
            if holder.is_dir():
                shutil.rmtree(holder)
            else:
                holder.unlink()
        if isinstance(exc, VolumeWriteError) or not isinstance(exc, Exception):
            raise
        raise VolumeWriteError(path, problem) from exc
    finally:
        os.close(fd)
    return path


def write_json_atomically(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON (no NaN) to ``path`` through :func:`write_atomically`."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
    return write_atomically(Path(path), lambda temporary: temporary.write_text(text), overwrite=True)


def temporary_directory_name(path: Path, token: str | None = None) -> Path:
    """A hidden sibling ``.<name>.<8 hex>.partial`` for a store (a folder) being written; ``token`` (8 hex)
    makes it deterministic, so an interrupted run can find it again."""
    path = Path(path)
    return path.with_name(_temporary_name(path, token or secrets.token_hex(4)))


@contextlib.contextmanager
def temporary_directory(path: str | Path) -> Iterator[Path]:
    """A hidden, locked temporary folder beside ``path`` (``.<name>.<8 hex>.partial``), for work that may or may
    not become ``path``: a writer moves what it keeps out of it; the folder and the rest go on exit. Named and
    locked like :func:`write_atomically`'s temporaries: never taken for a result, kept while its writer lives,
    swept by the next write into the folder when its writer was killed."""
    folder = temporary_directory_name(Path(path))
    folder.mkdir(mode=0o700)
    fd = os.open(folder, os.O_RDONLY)
    _lock(fd)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


@contextlib.contextmanager
def holding(folder: Path) -> Iterator[Path]:
    """Create ``folder`` if needed and hold its writer lock for the block, so that another writer into the same
    parent folder (another process, a dask worker) never sweeps it as a killed writer's temporary. The folder gets
    the umask's mode like any other: it becomes the published store, which others (Fiji, colleagues) must read."""
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    _lock(fd)
    try:
        yield folder
    finally:
        os.close(fd)


def publish_directory(temporary: Path, path: Path, *, overwrite: bool = False) -> Path:
    """Move a finished temporary folder onto ``path`` (renames only; an existing ``path`` is replaced only with
    ``overwrite``, moved aside first so that a reader never sees a half-replaced store)."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise VolumeWriteError(path, "already exists; pass --overwrite to replace it")
        aside = temporary_directory_name(path)
        os.rename(path, aside)
        os.rename(temporary, path)
        if aside.is_dir():
            shutil.rmtree(aside, ignore_errors=True)
        else:  # a plain file the store replaces
            aside.unlink(missing_ok=True)
    else:
        os.rename(temporary, path)
    return path


def write_directory_atomically(path: Path, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Like :func:`write_atomically` for stores that are folders (Zarr): ``write(temporary_folder)`` then rename.

    The temporary folder is removed on any failure (Ctrl-C included); nothing appears under ``path`` until done.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise VolumeWriteError(path, "already exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise VolumeWriteError(path, f"folder {path.parent} does not exist")
    temporary = temporary_directory_name(path)
    try:
        with holding(temporary):  # unlocked, a concurrent write into the folder would sweep it half-written
            write(temporary)
            publish_directory(temporary, path, overwrite=overwrite)
    except BaseException as exc:
        problem = _problem(exc, path.parent)
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(exc, VolumeWriteError) or not isinstance(exc, Exception):
            raise
        raise VolumeWriteError(path, problem) from exc
    return path
