"""tasks.block_sample: the normalisation sample of a big store reads a fixed few chunks, not all of them."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from voxelstudio.core.errors import VolumeReadError
from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.io.zarr_ import compute, open_lazy
from voxelstudio.tasks import block_sample
from voxelstudio.tasks.block_sample import sample_chunks, sample_of, sample_range

GRID = (4, 8, 8)  # chunks along z, y, x of the stored array
CHUNK = (8, 8, 8)


def test_chosen_chunks_are_distinct_spread_in_storage_order_and_the_same_every_time():
    chosen = sample_chunks((8, 8, 8), 16)
    assert len(set(chosen)) == 16 and chosen == sorted(chosen) == sample_chunks((8, 8, 8), 16)
    assert all(0 <= i < 8 for index in chosen for i in index)
    assert all(len({index[axis] for index in chosen}) >= 5 for axis in range(3))  # not one corner or one slab
    assert sample_chunks((2, 1, 3), 16) == [(i, 0, k) for i in range(2) for k in range(3)]  # few chunks: all


@pytest.fixture
def chunk_ids(tmp_path):
    """A bare store of 256 chunks, each filled with its own number (its index in storage order)."""
    path = tmp_path / "ids.zarr"
    shape = tuple(g * c for g, c in zip(GRID, CHUNK, strict=True))
    array = zarr.open_array(str(path), mode="w", shape=shape, chunks=CHUNK, dtype="f4", zarr_format=2)
    ids = np.arange(np.prod(GRID), dtype=np.float32).reshape(GRID)
    array[:] = ids.repeat(CHUNK[0], 0).repeat(CHUNK[1], 1).repeat(CHUNK[2], 2)
    return path


def test_a_big_store_is_sampled_from_a_few_chunks_and_no_other_chunk_is_read(chunk_ids, monkeypatch):
    monkeypatch.setattr(block_sample, "SAMPLE_VOXELS", 4096)  # 8 chunks' worth: at least MIN_SAMPLE_CHUNKS drawn
    lazy = open_lazy(chunk_ids)
    read = np.unique(compute(chunk_ids, sample_of(lazy)))
    assert len(read) == block_sample.MIN_SAMPLE_CHUNKS < np.prod(GRID)
    for key in chunk_ids.iterdir():  # damage every chunk the sample does not use: it still reads
        if key.name.startswith("."):
            continue  # .zarray, .zattrs
        if np.ravel_multi_index(tuple(int(i) for i in key.name.split(".")), GRID) not in read:
            key.write_bytes(b"not a chunk")
    np.testing.assert_array_equal(np.unique(compute(chunk_ids, sample_of(open_lazy(chunk_ids)))), read)
    with pytest.raises(VolumeReadError, match="cannot be read"):  # and the damage is real
        compute(chunk_ids, open_lazy(chunk_ids).data)


def test_chunks_larger_than_the_sample_are_strided_within_and_a_small_volume_is_sampled_whole(chunk_ids, monkeypatch):
    monkeypatch.setattr(block_sample, "SAMPLE_VOXELS", 1024)  # 16 chunks of 512 voxels: every 2nd voxel of each
    sample = compute(chunk_ids, sample_of(open_lazy(chunk_ids)))
    assert sample.size == 16 * 4**3 <= block_sample.SAMPLE_VOXELS
    monkeypatch.setattr(block_sample, "SAMPLE_VOXELS", 1 << 22)
    lazy = open_lazy(chunk_ids)
    whole = compute(chunk_ids, lazy.data)
    assert sample_range(PercentileNormalizer(1, 99), lazy, chunk_ids) == tuple(np.percentile(whole, [1, 99]))
