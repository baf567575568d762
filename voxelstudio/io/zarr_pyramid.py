"""Multiscale pyramids of OME-Zarr images (OME-NGFF ``multiscales``), written chunk by chunk.

Level ``k + 1`` is the mean of 2x2 voxels in y and x of level ``k`` (edges repeated for odd sizes); z is halved too
once it is no longer the coarse axis (its step is at most the lateral step) and has at least ``2 * Z_MIN_PLANES``
planes, so thin stacks keep their planes. Levels are added while the lateral size exceeds ``min_lateral`` (at most
``max_levels`` in all), chunked as level 0. Each level lists its ``scale`` and the ``translation`` of its first
voxel centre, as the NGFF specification asks; readers pick a level by its path (``"0"`` is the full resolution).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.memory import release_free_heap
from voxelstudio.io.zarr_ import NGFF_CHUNK_KEYS, translation_of

MIN_LATERAL = 256
"""A level is added while the previous one is wider or taller than this (voxels)."""
MAX_LEVELS = 5
Z_MIN_PLANES = 32


@dataclass(frozen=True)
class Level:
    """One resolution level: its array path, shape (H, W, Z) and voxel size (y, x, z) in micrometres."""

    path: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def voxels(self) -> int:
        return int(np.prod(self.shape))


def level_factors(
    shape_zyx: Sequence[int],
    scale_zyx: Sequence[float],
    *,
    min_lateral: int = MIN_LATERAL,
    max_levels: int = MAX_LEVELS,
) -> list[tuple[int, int, int]]:
    """The (z, y, x) downsampling factor of each level after the first, relative to the level before it."""
    shape, scale = [int(n) for n in shape_zyx], [float(s) for s in scale_zyx]
    factors: list[tuple[int, int, int]] = []
    while len(factors) + 1 < max_levels and max(shape[1], shape[2]) > min_lateral:
        fz = 2 if shape[0] >= 2 * Z_MIN_PLANES and scale[0] <= min(scale[1], scale[2]) else 1
        factor = (fz, 2, 2)
        factors.append(factor)
        shape = [-(-n // f) for n, f in zip(shape, factor, strict=True)]
        scale = [s * f for s, f in zip(scale, factor, strict=True)]
    return factors


def coarsen(block: np.ndarray, factor: Sequence[int]) -> np.ndarray:
    """The mean over ``factor`` (z, y, x) voxels of ``block``, its last voxel repeated where a size is not a
    multiple of the factor (as at the end of an odd-sized array)."""
    pads = [(0, (-n) % f) for n, f in zip(block.shape, factor, strict=True)]
    if any(after for _, after in pads):
        block = np.pad(block, pads, mode="edge")
    split = [n for size, f in zip(block.shape, factor, strict=True) for n in (size // f, f)]
    return block.reshape(split).mean(axis=(1, 3, 5), dtype=np.float32)


def _spans(stop: int, step: int) -> list[slice]:
    return [slice(start, min(start + step, stop)) for start in range(0, stop, step)]


def downsample_into(source: Any, target: Any, factor: Sequence[int], *, threads: int = 1) -> None:
    """Fill the zarr array ``target`` with the ``factor`` mean of the zarr array ``source``, one ``target`` chunk at
    a time, each built from reads of at most one ``source`` chunk (when its sizes are multiples of the factor): a
    thread holds the output chunk, one read and zarr's codec buffers (measured about 8 chunks' worth of resident
    memory in all, against 12-13 when dask read 2x2 chunks per output chunk)."""
    pieces = [max(1, int(c) // int(f)) for c, f in zip(source.chunks, factor, strict=True)]
    grid = [_spans(int(n), int(c)) for n, c in zip(target.shape, target.chunks, strict=True)]

    def one_chunk(region: tuple[slice, ...]) -> None:
        out = np.empty([s.stop - s.start for s in region], np.float32)
        parts = [_spans(s.stop - s.start, p) for s, p in zip(region, pieces, strict=True)]
        for local in itertools.product(*parts):
            read = tuple(
                slice((r.start + piece.start) * f, min((r.start + piece.stop) * f, n))
                for r, piece, f, n in zip(region, local, factor, source.shape, strict=True)
            )
            out[local] = coarsen(np.asarray(source[read], np.float32), factor)
        target[region] = out
        del out
        release_free_heap()  # zarr's codec threads free their buffers into arenas of their own

    regions = list(itertools.product(*grid))
    if threads <= 1:
        for region in regions:
            one_chunk(region)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one_chunk, regions))


def _image(root: Any) -> dict[str, Any]:
    return dict(root.attrs["multiscales"][0])


def write_pyramid(
    store: str | Path, *, min_lateral: int = MIN_LATERAL, max_levels: int = MAX_LEVELS, threads: int = 1
) -> int:
    """Write the lower-resolution levels of the 3-D (z, y, x) OME-Zarr image in ``store`` (level ``"0"`` written)
    and list them in its ``multiscales``; returns the number of levels. Memory per thread: about 8 chunks
    of resident memory (see :func:`downsample_into` and benchmarks/README.md)."""
    import zarr

    root = zarr.open_group(str(store), mode="r+")
    image = _image(root)
    first = dict(image["datasets"][0])
    source = root[str(first["path"])]
    scale = np.asarray(first["coordinateTransformations"][0]["scale"], dtype=np.float64)
    origin = translation_of(first["coordinateTransformations"], 3)  # level 0's own, kept by every level
    datasets, chunks = [first], tuple(int(c) for c in source.chunks)
    total = np.ones(3)
    for index, factor in enumerate(level_factors(source.shape, scale, min_lateral=min_lateral, max_levels=max_levels)):
        shape = tuple(-(-int(n) // f) for n, f in zip(source.shape, factor, strict=True))
        target = root.create_array(
            str(index + 1),
            shape=shape,
            chunks=tuple(min(c, n) for c, n in zip(chunks, shape, strict=True)),
            dtype="float32",
            fill_value=0,
            overwrite=True,
            chunk_key_encoding=NGFF_CHUNK_KEYS,
        )
        downsample_into(source, target, factor, threads=threads)
        total *= factor
        transforms = [
            {"type": "scale", "scale": (scale * total).tolist()},
            {"type": "translation", "translation": (origin + (total - 1) / 2 * scale).tolist()},
        ]
        datasets.append({"path": str(index + 1), "coordinateTransformations": transforms})
        source = target
    image["datasets"] = datasets
    root.attrs["multiscales"] = [image]
    return len(datasets)
