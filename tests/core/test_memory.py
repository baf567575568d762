"""core.memory: freed heap memory goes back to the system."""

from __future__ import annotations

import psutil
import pytest

from voxelstudio.core.memory import malloc_trim, release_free_heap


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
