"""tasks.block_sample: the normalisation sample of a big store reads chunks on an even lattice, not all of them."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from voxelstudio.core.errors import VolumeReadError
from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.io.zarr_ import LazyVolume, compute, open_lazy
from voxelstudio.tasks import block_sample
from voxelstudio.tasks.block_sample import sample_chunks, sample_of, sample_range

GRID = (4, 8, 8)  # chunks along z, y, x of the stored array
CHUNK = (8, 8, 8)


def lazy_of(data: da.Array) -> LazyVolume:
    return LazyVolume(data=data, spacing=(1.0, 1.0, 1.0), name="test", array=None, axes=("y", "x", "z"))


def test_chosen_chunks_lie_on_an_even_lattice_centre_included_within_the_count():
    chosen = sample_chunks((16, 16, 16), 64)
    assert len(set(chosen)) == len(chosen) == 64 and chosen == sorted(chosen)
    assert all({index[axis] for index in chosen} == {2, 6, 10, 14} for axis in range(3))  # middles of 4 parts
    for grid in [(8, 8, 4), (1000, 1, 1), (2, 2, 1000), (100, 100, 1), (7, 3, 5)]:
        chosen = sample_chunks(grid, 64)
        assert 0.8 * min(64, np.prod(grid)) <= len(chosen) <= 64, grid
        assert all(0 <= i < n for index in chosen for i, n in zip(index, grid, strict=True)), grid
    assert sample_chunks((2, 1, 3), 64) == [(i, 0, k) for i in range(2) for k in range(3)]  # few chunks: all


@pytest.fixture
def chunk_ids(tmp_path):
    """A bare store of 256 chunks, each filled with its own number (its index in storage order)."""
    path = tmp_path / "ids.zarr"
    shape = tuple(g * c for g, c in zip(GRID, CHUNK, strict=True))
    array = zarr.open_array(str(path), mode="w", shape=shape, chunks=CHUNK, dtype="f4", zarr_format=2)
    ids = np.arange(np.prod(GRID), dtype=np.float32).reshape(GRID)
    array[:] = ids.repeat(CHUNK[0], 0).repeat(CHUNK[1], 1).repeat(CHUNK[2], 2)
    return path


def test_a_big_store_is_sampled_from_some_chunks_and_no_other_chunk_is_read(chunk_ids, monkeypatch):
    monkeypatch.setattr(block_sample, "SAMPLE_VOXELS", 4096)  # 8 chunks' worth: MIN_SAMPLE_CHUNKS are read
    lazy = open_lazy(chunk_ids)
    read = np.unique(compute(chunk_ids, sample_of(lazy)))
    assert len(read) == len(sample_chunks(lazy.data.numblocks, block_sample.MIN_SAMPLE_CHUNKS)) < np.prod(GRID) / 3
    for key in chunk_ids.iterdir():  # damage every chunk the sample does not use: it still reads
        if key.name.startswith("."):
            continue  # .zarray, .zattrs
        if np.ravel_multi_index(tuple(int(i) for i in key.name.split(".")), GRID) not in read:
            key.write_bytes(b"not a chunk")
    np.testing.assert_array_equal(np.unique(compute(chunk_ids, sample_of(open_lazy(chunk_ids)))), read)
    with pytest.raises(VolumeReadError, match="cannot be read"):  # and the damage is real
        compute(chunk_ids, open_lazy(chunk_ids).data)


def test_a_specimen_in_the_middle_of_the_volume_gets_its_share_of_the_sample(monkeypatch):
    """Beads only inside a central ellipsoid (about an eighth of the volume): the sampled range is the whole's."""
    rng = np.random.default_rng(0)
    data = rng.normal(100.0, 3.0, (128, 128, 64)).astype(np.float32)
    y, x, z = np.ogrid[:128, :128, :64]
    inside = ((y - 64) / 40) ** 2 + ((x - 64) / 40) ** 2 + ((z - 32) / 20) ** 2 < 1
    data[inside & (rng.random(data.shape) < 0.02)] += 100.0
    monkeypatch.setattr(block_sample, "SAMPLE_VOXELS", 1 << 16)  # a 16th of the volume, from 64 of 512 chunks
    lazy = lazy_of(da.from_array(data, chunks=(16, 16, 8)))
    low, high = sample_range(PercentileNormalizer(), lazy, "centred.zarr")
    exact = np.percentile(data, [2.0, 99.8])
    assert low == pytest.approx(exact[0], rel=0.02) and high == pytest.approx(exact[1], rel=0.1)


def test_the_sample_stays_within_its_size_for_huge_or_single_plane_chunks(monkeypatch):
    monkeypatch.setattr(block_sample, "SAMPLE_VOXELS", 4096)
    for shape, chunks in [((64, 64, 64), (32, 32, 32)), ((256, 256, 16), (256, 256, 1)), ((512, 64, 4), (512, 64, 1))]:
        size = sample_of(lazy_of(da.zeros(shape, chunks=chunks, dtype=np.float32))).size
        assert 4096 / 8 < size <= 4096, (shape, chunks, size)


def test_a_small_volume_is_sampled_whole(chunk_ids):
    lazy = open_lazy(chunk_ids)
    whole = compute(chunk_ids, lazy.data)
    assert sample_range(PercentileNormalizer(1, 99), lazy, chunk_ids) == tuple(np.percentile(whole, [1, 99]))
