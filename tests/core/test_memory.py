"""core.memory: a job that does not fit is refused with the amounts; freed heap memory goes back to the system."""

from __future__ import annotations

from types import SimpleNamespace

import psutil
import pytest

from voxelstudio.core import memory
from voxelstudio.core.errors import VoxelStudioError
from voxelstudio.core.memory import check_available, malloc_trim, release_free_heap


def test_a_need_beyond_the_available_memory_is_refused_with_both_amounts(monkeypatch):
    monkeypatch.setattr(memory.psutil, "virtual_memory", lambda: SimpleNamespace(available=2 * memory.GIB))
    check_available(2 * memory.GIB, "x", "y")  # exactly what is there fits
    with pytest.raises(VoxelStudioError) as raised:
        check_available(3.5 * memory.GIB, "simulating a 9x9x9 volume", "simulate a smaller --shape")
    assert str(raised.value) == (
        "simulating a 9x9x9 volume needs about 3.5 GiB of memory but only 2.0 GiB is available; "
        "simulate a smaller --shape"
    )


@pytest.mark.skipif(malloc_trim() is None, reason="needs glibc's malloc_trim")
def test_freed_heap_fragments_are_returned():
    """Buffers of 64 KiB come from the heap (below glibc's mmap threshold); freeing all but every 16th leaves the
    heap full of holes that free() alone keeps resident."""
    process = psutil.Process()
    buffers = [bytearray(b"x" * (64 << 10)) for _ in range(3200)]  # 200 MiB, every page touched
    kept = buffers[::16]
    buffers.clear()
    before = process.memory_info().rss
    assert release_free_heap()
    after = process.memory_info().rss
    assert before - after > 100 << 20, (before >> 20, after >> 20)
    assert all(b[:1] == b"x" for b in kept)  # what is still referenced stays
