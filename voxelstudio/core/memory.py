"""Memory: checking that a job fits before it starts, and giving freed heap memory back to the operating system."""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

import psutil

from voxelstudio.core.errors import VoxelStudioError

GIB = float(1 << 30)


def check_available(needed: float, task: str, advice: str) -> None:
    """VoxelStudioError \"TASK needs about N GiB of memory but only M GiB is available; ADVICE\" when ``needed``
    bytes exceed the memory available now."""
    available = psutil.virtual_memory().available
    if needed > available:
        raise VoxelStudioError(
            f"{task} needs about {needed / GIB:.1f} GiB of memory but only {available / GIB:.1f} GiB is available; "
            f"{advice}"
        )


@functools.cache
def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None off Linux, or on a C library without it, such as musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_heap() -> bool:
    """Return the free memory at the top of, and inside, glibc's heaps to the system (``malloc_trim(0)``).

    A long run that allocates and frees large buffers of changing sizes (one block after another) otherwise keeps
    its peak resident size; dask recommends the same for its workers. Returns whether anything was released; a no-op
    (False) without glibc.
    """
    trim = malloc_trim()
    return bool(trim(0)) if trim is not None else False
