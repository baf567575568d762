"""Multiscale pyramids of OME-Zarr images (OME-NGFF ``multiscales``), written chunk by chunk with Dask.

Level ``k + 1`` is the mean of 2x2 voxels in y and x of level ``k`` (edges repeated for odd sizes); z is halved too
once it is no longer the coarse axis (its step is at most the lateral step) and has at least ``2 * Z_MIN_PLANES``
planes, so thin stacks keep their planes. Levels are added while the lateral size exceeds ``min_lateral`` (at most
``max_levels`` in all). Each level lists its ``scale`` and the ``translation`` of its first voxel centre, as the
NGFF specification asks; readers pick a level by its path (``"0"`` is the full resolution).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


def downsample(data: Any, factor: Sequence[int], chunks: Sequence[int]) -> Any:
    """A lazy mean over ``factor`` (z, y, x) voxels of the Dask array ``data``, chunked as ``chunks``: each output
    chunk is computed from one input block of ``chunks * factor`` voxels."""
    import dask.array as da

    pads = [(0, (-n) % f) for n, f in zip(data.shape, factor, strict=True)]
    if any(after for _, after in pads):
        data = da.pad(data, pads, mode="edge")
    data = data.rechunk(tuple(int(c) * int(f) for c, f in zip(chunks, factor, strict=True)))
    axes = {axis: int(f) for axis, f in enumerate(factor)}
    return da.coarsen(np.mean, data, axes, trim_excess=False).astype(np.float32)


def _image(root: Any) -> dict[str, Any]:
    return dict(root.attrs["multiscales"][0])


def write_pyramid(
    store: str | Path, *, min_lateral: int = MIN_LATERAL, max_levels: int = MAX_LEVELS, threads: int = 1
) -> int:
    """Write the lower-resolution levels of the 3-D (z, y, x) OME-Zarr image in ``store`` (level ``"0"`` written)
    and list them in its ``multiscales``; returns the number of levels. Memory per thread: a few reads of 2x2
    chunks (about 330 MB with the default 16 MB chunks, see benchmarks/README.md)."""
    import dask.array as da
    import zarr

    root = zarr.open_group(str(store), mode="r+")
    image = _image(root)
    first = dict(image["datasets"][0])
    base = root[str(first["path"])]
    scale = np.asarray(first["coordinateTransformations"][0]["scale"], dtype=np.float64)
    datasets, data = [first], da.from_zarr(base)
    total = np.ones(3)
    for index, factor in enumerate(level_factors(base.shape, scale, min_lateral=min_lateral, max_levels=max_levels)):
        chunks = tuple(min(int(c), -(-int(n) // f)) for c, n, f in zip(base.chunks, data.shape, factor, strict=True))
        down = downsample(data, factor, chunks)
        array = root.create_array(
            str(index + 1), shape=down.shape, chunks=chunks, dtype="float32", fill_value=0, overwrite=True
        )
        da.store(down, array, lock=False, scheduler="threads", num_workers=threads)
        total *= factor
        transforms = [
            {"type": "scale", "scale": (scale * total).tolist()},
            {"type": "translation", "translation": ((total - 1) / 2 * scale).tolist()},
        ]
        datasets.append({"path": str(index + 1), "coordinateTransformations": transforms})
        data = da.from_zarr(array)
    image["datasets"] = datasets
    root.attrs["multiscales"] = [image]
    return len(datasets)
