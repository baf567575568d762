"""Fit any volume into a classifier's occupancy grid without distorting it, and map grid values back.

A microscope volume is rarely a cube of 0/1 voxels: it is shrunk by one factor in physical units (its voxel spacing)
so its longest side fills the grid (averaging the voxels that become one), thresholded halfway between its minimum
and maximum, and centred in the grid with empty space around it. :meth:`PlacedGrid.to_volume` samples a map over
the grid (a Grad-CAM heat map) back at the volume's voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from voxelstudio.core.resample import resample_axes
from voxelstudio.core.volume import Volume


@dataclass(frozen=True)
class PlacedGrid:
    """``grid`` (uint8 occupancy) holds the volume scaled by ``scale`` grid voxels per volume voxel (per axis),
    its first voxel's corner at grid coordinate ``offset``."""

    grid: np.ndarray
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]

    def grid_coordinates(self, shape: Sequence[int]) -> list[np.ndarray]:
        """Per axis, the grid coordinate (voxel centres at integers) of each volume voxel's centre."""
        return [
            offset + (np.arange(n) + 0.5) * scale - 0.5
            for n, scale, offset in zip(shape, self.scale, self.offset, strict=True)
        ]

    def to_volume(self, values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """``values`` over the grid, linearly interpolated at the voxels of a volume of ``shape`` (float32)."""
        return resample_axes(values, self.grid_coordinates(shape))


def place_volume(volume: Volume, shape: Sequence[int]) -> PlacedGrid:
    """The occupancy of ``volume`` (>= halfway between its resampled minimum and maximum) fitted into a grid of
    ``shape``."""
    data = np.asarray(volume.data, dtype=np.float32)
    extent = np.asarray(data.shape) * np.asarray(volume.spacing, dtype=np.float64)
    target = np.asarray(shape, dtype=np.int64)
    grid_voxel = float(np.max(extent / target))  # physical size of one grid voxel
    scale = np.asarray(volume.spacing, dtype=np.float64) / grid_voxel
    offset = (target - np.asarray(data.shape) * scale) / 2
    blocks = [max(1, round(1 / s)) for s in scale]  # average each grid voxel's worth, so small objects survive
    smoothed = ndimage.uniform_filter(data, blocks, mode="nearest") if max(blocks) > 1 else data
    zoomed = ndimage.zoom(smoothed, scale, order=1, grid_mode=True, mode="nearest")
    low, high = float(np.nanmin(zoomed)), float(np.nanmax(zoomed))
    occupied = zoomed >= (low + high) / 2 if high > low else np.full(zoomed.shape, low >= 0.5)
    grid = np.zeros(tuple(target), dtype=np.uint8)
    start = np.clip(np.round(offset).astype(np.int64), 0, target)
    stop = np.minimum(start + zoomed.shape, target)
    region = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    grid[region] = occupied[tuple(slice(0, b - a) for a, b in zip(start, stop, strict=True))]
    return PlacedGrid(grid, tuple(float(s) for s in scale), tuple(float(o) for o in offset))  # type: ignore[arg-type]
