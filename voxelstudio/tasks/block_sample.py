"""The normalisation sample of a volume read lazily: a fixed few of its chunks, not a stride through all of them.

A strided sample (every n-th voxel along each axis) touches every chunk of a store, so a 100 GB volume would be
read and decompressed in full before the first block. Instead, whole chunks are drawn at fixed random positions
(seeded: the same store always gives the same sample, so resumed runs keep their range), at most SAMPLE_VOXELS
voxels in all, a stride applied within a chunk only when chunks are so large that MIN_SAMPLE_CHUNKS of them would
hold more. A volume of at most SAMPLE_VOXELS voxels is sampled whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.io import zarr_
from voxelstudio.tasks.block_predict import check_finite

SAMPLE_VOXELS = 1 << 22
"""Voxels of the sample the normalisation percentiles are computed from (16 MB of float32)."""
MIN_SAMPLE_CHUNKS = 16
"""Chunks drawn at least (when there are as many): beads are sparse, so the sample must be spread."""


def sample_chunks(numblocks: Sequence[int], count: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``count`` distinct chunk indices of a grid of ``numblocks`` chunks, drawn at fixed random positions and
    listed in storage order (all of them when there are no more)."""
    total = math.prod(numblocks)
    flat = np.arange(total) if count >= total else np.random.default_rng(seed).choice(total, count, replace=False)
    indices = np.unravel_index(np.sort(flat), tuple(numblocks))
    return [tuple(int(i) for i in index) for index in zip(*indices, strict=True)]


def sample_of(lazy: zarr_.LazyVolume) -> Any:
    """The lazy sample of ``lazy``'s data (a 1-D Dask array): see the module's docstring."""
    import dask.array as da

    data = lazy.data
    if zarr_.voxels(lazy.shape) <= SAMPLE_VOXELS:
        return data.ravel()
    chunk_voxels = math.prod(max(sizes) for sizes in data.chunks)
    count = max(MIN_SAMPLE_CHUNKS, SAMPLE_VOXELS // chunk_voxels)
    chosen = sample_chunks(data.numblocks, count)
    step = max(1, math.ceil((chunk_voxels * len(chosen) / SAMPLE_VOXELS) ** (1 / 3)))
    return da.concatenate([data.blocks[index][::step, ::step, ::step].ravel() for index in chosen])


def sample_range(normalizer: Any, lazy: zarr_.LazyVolume, source: Path) -> tuple[float, float]:
    """The normaliser's percentiles over :func:`sample_of` ``lazy`` (NaN in the sample: NonFiniteValuesError)."""
    sample = zarr_.compute(source, sample_of(lazy))
    check_finite(sample, source, lazy.name)
    low, high = normalizer.input_range(sample)
    return float(low), float(high)
