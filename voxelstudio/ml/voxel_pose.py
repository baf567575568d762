"""Pose normalisation of occupancy grids whose objects come in any 3-D orientation (numpy/scipy only).

A classifier with ``orientation="any"`` sees every grid turned onto the principal axes of its largest connected
object (largest variance along axis 0, smallest along axis 2, each axis pointing towards the object's positive third
moment) with that object's centroid at the grid centre. Turning about z (VoxNet's augmentation for upright CAD
models) covers one of the three rotational degrees of freedom; the pose covers all three up to the axes' signs,
which augmentation and voting cover with flips (:func:`flip_views`). Voxels are looked up nearest-neighbour;
voxels that come from outside the grid are empty.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FLIPS: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
"""The eight flip combinations of three axes, the identity first (the views of voting under ``any``)."""


@functools.lru_cache(maxsize=8)
def _voxel_centres(shape: tuple[int, ...]) -> np.ndarray:
    """(H*W*Z, 3) float coordinates of every voxel of a grid of ``shape``."""
    axes = [np.arange(n, dtype=np.float64) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _lookup(values: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """``values`` at the rounded ``sources`` (one row per output voxel, in C order); 0 outside."""
    index = np.rint(sources).astype(np.int64)
    inside = np.all((index >= 0) & (index < np.array(values.shape)), axis=1)
    out = np.zeros(len(index), dtype=values.dtype)
    kept = index[inside]
    out[inside] = values[kept[:, 0], kept[:, 1], kept[:, 2]]
    return out.reshape(values.shape)


@dataclass(frozen=True)
class Pose:
    """A grid's principal frame: ``axes`` (3x3, columns are the principal axes in voxel coordinates, largest
    variance first) through ``centroid`` (voxel coordinates)."""

    axes: np.ndarray
    centroid: np.ndarray

    def apply(self, grid: np.ndarray) -> np.ndarray:
        """``grid`` in the principal frame: the principal axes along the grid's axes, the centroid at the centre."""
        centre = (np.array(grid.shape) - 1) / 2.0
        return _lookup(grid, (_voxel_centres(grid.shape) - centre) @ self.axes.T + self.centroid)

    def invert(self, values: np.ndarray) -> np.ndarray:
        """``values`` given in the principal frame (a heat map of the posed grid) back in the grid's own frame."""
        centre = (np.array(values.shape) - 1) / 2.0
        return _lookup(values, (_voxel_centres(values.shape) - self.centroid) @ self.axes + centre)


def principal_pose(grid: np.ndarray) -> Pose:
    """The principal frame of the largest connected object of ``grid`` (the identity at the centre when empty).
    Isolated noise voxels are other components, so they move neither the centroid nor the axes."""
    grid = np.asarray(grid)
    occupied = grid > 0.5
    labels, count = ndimage.label(occupied)
    if count > 1:
        occupied = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    points = np.argwhere(occupied).astype(np.float64)
    if len(points) < 2:
        return Pose(np.eye(3), (np.array(grid.shape) - 1) / 2.0)
    centroid = points.mean(axis=0)
    offsets = points - centroid
    _, vectors = np.linalg.eigh(offsets.T @ offsets / len(points))
    axes = vectors[:, ::-1]  # eigh sorts ascending
    skew = ((offsets @ axes) ** 3).sum(axis=0)
    return Pose(axes * np.where(skew < 0, -1.0, 1.0), centroid)


def to_principal_pose(grids: np.ndarray) -> np.ndarray:
    """Every grid of a batch (N, H, W, Z) in its own principal frame (same dtype)."""
    grids = np.asarray(grids)
    if grids.ndim != 4:
        raise ValueError(f"expected a batch of grids (N, H, W, Z), got shape {grids.shape}")
    return np.stack([principal_pose(grid).apply(grid) for grid in grids]) if len(grids) else grids.copy()


def flip_views(grids: np.ndarray, count: int) -> np.ndarray:
    """(N * count, H, W, Z) float32, grid-major: each grid under the first ``count`` (1-8) of :data:`FLIPS`."""
    grids = np.asarray(grids)
    if not 1 <= count <= len(FLIPS):
        raise ValueError(f"flip views: count must be 1-{len(FLIPS)}, got {count}")
    views = [np.flip(grids, axis=tuple(a + 1 for a in flips)) if flips else grids for flips in FLIPS[:count]]
    return np.stack(views, axis=1).reshape(-1, *grids.shape[1:]).astype(np.float32)
