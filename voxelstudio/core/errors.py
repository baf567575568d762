"""Exceptions users see. Each message is one line that names the file (if any) and the problem."""

from __future__ import annotations

from pathlib import Path


class VoxelStudioError(Exception):
    """Base class for errors that are shown to the user as a one-line message."""


def _one_line(path: str | Path | None, problem: str) -> str:
    problem = " ".join(str(problem).split())
    return f"{path}: {problem}" if path is not None else problem


class FileError(VoxelStudioError):
    """An error about one file: ``path`` (None when there is none) and the ``problem``, shown as ``PATH: problem``.
    Picklable with both (a dask worker or a child process raises it where the user's process reports it)."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(_one_line(path, problem))

    def __reduce__(self) -> tuple[type, tuple[Path | None, str]]:
        return type(self), (self.path, self.problem)


class VolumeReadError(FileError):
    """A volume file could not be read (missing, corrupt, unsupported content)."""


class NonFiniteValuesError(VolumeReadError):
    """A volume holds NaN or infinite values: a fault of its content, not of reading it (trying again cannot help)."""


class VolumeWriteError(FileError):
    """A volume could not be written; no partial output was left behind."""


class ModelError(FileError):
    """A model file is unusable for the task (corrupt, unsafe, wrong shape)."""


class Cancelled(VoxelStudioError):
    """A long job stopped because its cancel token was set."""

    def __init__(self, what: str = "job") -> None:
        self.what = what
        super().__init__(f"{what} cancelled")

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return type(self), (self.what,)


def message_of(exc: BaseException) -> str:
    """The one-line text users see for ``exc``. An operating-system error reads ``FILE: problem`` (for example
    ``out/raw: Not a directory``) instead of Python's ``[Errno 20] Not a directory: 'out/raw'``."""
    if isinstance(exc, OSError) and exc.strerror:
        if exc.filename is None:
            return _one_line(None, exc.strerror)
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        return _one_line(where, exc.strerror)
    return " ".join(str(exc).split())
