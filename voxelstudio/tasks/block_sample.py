"""The normalisation sample of a volume read lazily: chunks on an even lattice, not a stride through all of them.

A strided sample (every n-th voxel along each axis) touches every chunk of a store, so a 100 GB volume would be
read and decompressed in full before the first block. Instead, whole chunks on a regular lattice over the chunk grid
are read (:func:`sample_chunks`: the centre and the edges alike, so a specimen in one part of the volume has its
share of the sample), between MIN_SAMPLE_CHUNKS and MAX_SAMPLE_CHUNKS of them, and within each chunk every s-th
voxel along each axis, s the smallest stride that keeps the sample within SAMPLE_VOXELS. A volume of at most
SAMPLE_VOXELS voxels is sampled whole. NaN or infinite values in the sample stop a run before it starts; those
elsewhere stop it at their block.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voxelstudio.io import zarr_
from voxelstudio.tasks.block_predict import check_finite

SAMPLE_VOXELS = 1 << 22
"""Voxels of the sample the normalisation percentiles are computed from (16 MB of float32)."""
MIN_SAMPLE_CHUNKS = 64
"""Chunks read at least (when there are as many): beads are sparse and specimens uneven, so the sample is spread."""
MAX_SAMPLE_CHUNKS = 512
"""Chunks read at most: each read costs its decompression and a task, however few voxels it gives."""


def sample_chunks(numblocks: Sequence[int], count: int) -> list[tuple[int, ...]]:
    """At most ``count`` chunk indices on an even lattice over a grid of ``numblocks`` chunks (all of them when
    there are no more): along each axis the middle chunks of equal parts, as many parts as the axis' share of
    ``count`` allows, in index order."""
    grid = [int(n) for n in numblocks]
    if math.prod(grid) <= count:
        return list(itertools.product(*(range(n) for n in grid)))
    long_axes = [n for n in grid if n > 1]
    scale = (count / math.prod(long_axes)) ** (1 / len(long_axes))
    parts = [max(1, min(n, int(n * scale))) for n in grid]
    while math.prod(parts) > count:  # an axis of few chunks kept 1 part where its share was less
        widest = max(range(len(grid)), key=lambda a: parts[a])
        parts[widest] -= 1
    for axis in sorted(range(len(grid)), key=lambda a: parts[a] / grid[a]):  # the most thinly sampled axes first
        while parts[axis] < grid[axis] and math.prod(parts) // parts[axis] * (parts[axis] + 1) <= count:
            parts[axis] += 1
    positions = [[int((i + 0.5) * n / p) for i in range(p)] for n, p in zip(grid, parts, strict=True)]
    return list(itertools.product(*positions))


def within_chunk_step(chunk: Sequence[int], voxels: int) -> int:
    """The smallest stride that leaves at most ``voxels`` voxels of a ``chunk`` (an axis of one voxel keeps it)."""
    step = 1
    while math.prod(math.ceil(n / step) for n in chunk) > max(voxels, 1):
        step += 1
    return step


def sample_of(lazy: zarr_.LazyVolume) -> Any:
    """The lazy sample of ``lazy``'s data (see the module's docstring): the whole array, or a 1-D Dask array."""
    import dask.array as da

    data = lazy.data
    if zarr_.voxels(lazy.shape) <= SAMPLE_VOXELS:
        return data
    chunk = [max(sizes) for sizes in data.chunks]
    wanted = min(max(SAMPLE_VOXELS // math.prod(chunk), MIN_SAMPLE_CHUNKS), MAX_SAMPLE_CHUNKS)
    chosen = sample_chunks(data.numblocks, wanted)
    step = within_chunk_step(chunk, SAMPLE_VOXELS // len(chosen))
    return da.concatenate([data.blocks[index][::step, ::step, ::step].ravel() for index in chosen])


def sample_range(normalizer: Any, lazy: zarr_.LazyVolume, source: Path) -> tuple[float, float]:
    """The normaliser's percentiles over :func:`sample_of` ``lazy`` (NaN in the sample: NonFiniteValuesError)."""
    sample = zarr_.compute(source, sample_of(lazy))
    check_finite(sample, source, lazy.name)
    low, high = normalizer.input_range(sample)
    return float(low), float(high)
