"""Augmentation and test-time voting for voxel occupancy grids (numpy/scipy only; no TensorFlow).

Grids are (H, W, Z) with z vertical, so rotations about the vertical axis turn the (H, W) plane. An angle is split
into quarter turns, done exactly with ``np.rot90``, and a remainder done with ``scipy.ndimage.rotate`` (linear
interpolation, thresholded at 0.5 so occupancy stays binary). Because of that split, the 12 rotations of
``rot90(x)`` are exactly the 12 rotations of ``x`` in another order, so voting over them is rotation-invariant.
Training augmentation turns the remainder by nearest-neighbour lookup instead (:func:`rotate_vertical_fast`, about
ten times cheaper than interpolating, which matters on a CPU where it competed with the training step itself).

:class:`AugmentedBatches` poses and augments a stream of generated (grids, labels) batches where they are made (in a
generator worker: this module and :mod:`voxel_pose` import no deep learning library).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from voxelstudio.ml.voxel_pose import to_principal_pose

PredictFn = Callable[[np.ndarray], np.ndarray]
"""Maps a float32 batch (N, H, W, Z) of occupancy grids to class probabilities (N, n_classes)."""


def _check_square(grid: np.ndarray) -> None:
    if grid.ndim != 3 or grid.shape[0] != grid.shape[1]:
        raise ValueError(f"rotation about the vertical axis needs an (N, N, Z) grid, got shape {grid.shape}")


def _quarter_turns(grid: np.ndarray, angle: float) -> tuple[np.ndarray, float]:
    """(``grid`` turned by the whole quarter turns of ``angle`` degrees about z, the remaining degrees)."""
    _check_square(grid)
    angle = float(angle) % 360.0
    quarters = int(angle // 90.0)
    return np.rot90(grid, quarters, axes=(0, 1)), angle - 90.0 * quarters


def rotate_vertical(grid: np.ndarray, angle: float) -> np.ndarray:
    """``grid`` rotated by ``angle`` degrees about z (the same sense as ``np.rot90(grid, 1, axes=(0, 1))``)."""
    out, rest = _quarter_turns(grid, angle)
    if rest > 1e-9:
        rotated = ndimage.rotate(out.astype(np.float32), rest, axes=(0, 1), reshape=False, order=1, mode="constant")
        out = (rotated >= 0.5).astype(grid.dtype)
    return np.ascontiguousarray(out)


@functools.lru_cache(maxsize=64)
def _nearest_lookup(size: int, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source rows, source columns, inside mask) of an (size, size) plane turned by ``angle`` degrees."""
    centre = (size - 1) / 2.0
    rows, cols = np.meshgrid(np.arange(size) - centre, np.arange(size) - centre, indexing="ij")
    theta = -np.deg2rad(angle)  # the sense of np.rot90(grid, 1, axes=(0, 1))
    source_r = np.rint(np.cos(theta) * rows - np.sin(theta) * cols + centre).astype(np.int64)
    source_c = np.rint(np.sin(theta) * rows + np.cos(theta) * cols + centre).astype(np.int64)
    inside = (source_r >= 0) & (source_r < size) & (source_c >= 0) & (source_c < size)
    return np.clip(source_r, 0, size - 1), np.clip(source_c, 0, size - 1), inside


def rotate_vertical_fast(grid: np.ndarray, angle: float) -> np.ndarray:
    """``grid`` turned by ``angle`` degrees about z: exact quarter turns, then a nearest-neighbour remainder."""
    out, rest = _quarter_turns(grid, angle)
    if rest > 1e-9:
        rows, cols, inside = _nearest_lookup(grid.shape[0], round(rest, 6))
        out = out[rows, cols] * inside[..., None].astype(grid.dtype)
    return np.ascontiguousarray(out)


def rotate_vertical_batch(grids: np.ndarray, angle: float) -> np.ndarray:
    """Every grid of a batch (N, H, W, Z) rotated like :func:`rotate_vertical` (the same values), in one call."""
    grids = np.asarray(grids)
    if grids.ndim != 4 or grids.shape[1] != grids.shape[2]:
        raise ValueError(f"rotation about the vertical axis needs (N, M, M, Z) grids, got shape {grids.shape}")
    angle = float(angle) % 360.0
    quarters = int(angle // 90.0)
    rest = angle - 90.0 * quarters
    out = np.rot90(grids, quarters, axes=(1, 2))
    if rest > 1e-9:
        rotated = ndimage.rotate(out.astype(np.float32), rest, axes=(1, 2), reshape=False, order=1, mode="constant")
        out = (rotated >= 0.5).astype(grids.dtype)
    return np.ascontiguousarray(out)


def vertical_rotations(grid: np.ndarray, count: int) -> np.ndarray:
    """(count, H, W, Z): ``grid`` rotated by 0, 360/count, 2*360/count, ... degrees about z."""
    return np.stack([rotate_vertical(grid, 360.0 * k / count) for k in range(count)])


def shift(grid: np.ndarray, offsets: tuple[int, ...]) -> np.ndarray:
    """``grid`` translated by whole voxels per axis; voxels moved in from outside are empty (no wrap-around)."""
    out = np.zeros_like(grid)
    source, target = [], []
    for size, offset in zip(grid.shape, offsets, strict=True):
        offset = int(np.clip(offset, -size, size))
        source.append(slice(max(-offset, 0), size - max(offset, 0)))
        target.append(slice(max(offset, 0), size - max(-offset, 0)))
    out[tuple(target)] = grid[tuple(source)]
    return out


def augment_grid(
    grid: np.ndarray,
    rng: np.random.Generator,
    *,
    rotations: int = 12,
    flip_prob: float = 0.2,
    max_shift: int = 2,
    flip_axes: tuple[int, ...] = (0, 1),
) -> np.ndarray:
    """One random VoxNet/VRN augmentation: a rotation about z by a multiple of 360/``rotations`` degrees, a flip of
    each of ``flip_axes`` (the horizontal ones by default) with probability ``flip_prob``, and a shift of up to
    ``max_shift`` voxels per axis."""
    out = rotate_vertical_fast(grid, 360.0 * int(rng.integers(rotations)) / rotations) if rotations > 1 else grid
    for axis in flip_axes:
        if rng.random() < flip_prob:
            out = np.flip(out, axis=axis)
    if max_shift > 0:
        out = shift(out, tuple(int(s) for s in rng.integers(-max_shift, max_shift + 1, size=3)))
    return np.ascontiguousarray(out)


def augment_batch(
    grids: np.ndarray,
    rng: np.random.Generator,
    *,
    rotations: int = 12,
    flip_prob: float = 0.2,
    max_shift: int = 2,
    flip_axes: tuple[int, ...] = (0, 1),
) -> np.ndarray:
    """Augment each grid of a batch (N, H, W, Z) independently (see :func:`augment_grid`); returns float32."""
    settings = {"rotations": rotations, "flip_prob": flip_prob, "max_shift": max_shift, "flip_axes": flip_axes}
    return np.stack([augment_grid(g, rng, **settings) for g in grids]).astype(np.float32)


def vote(predict: PredictFn, grids: np.ndarray, rotations: int = 12, *, chunk: int = 8) -> np.ndarray:
    """Class probabilities (N, C) averaged over ``rotations`` rotations about z of each grid (N, H, W, Z)."""
    grids = np.asarray(grids)
    if grids.ndim != 4:
        raise ValueError(f"expected a batch of grids (N, H, W, Z), got shape {grids.shape}")
    results = []
    for start in range(0, len(grids), chunk):
        part = grids[start : start + chunk]
        stacked = np.concatenate([vertical_rotations(g, rotations) for g in part]).astype(np.float32)
        probabilities = np.asarray(predict(stacked), dtype=np.float64)
        results.append(probabilities.reshape(len(part), rotations, -1).mean(axis=1))
    return np.concatenate(results) if results else np.zeros((0, 0))


AUGMENT_STREAM = 4
"""Second element of the ``[seed, stream, key]`` random stream that augments generated batch ``key``."""


@dataclass(frozen=True)
class AugmentedBatches:
    """``make_batch(key) -> (grids, labels)`` with each grid put in its principal pose (``pose_version``; None: as
    made) and augmented by :func:`augment_batch` with ``settings`` (None: not augmented): float32 grids, int labels.
    Deterministic per key, and picklable when ``make_batch`` is, so a generator worker can do it."""

    make_batch: Callable[[int], tuple[Any, ...]]
    seed: int = 0
    pose_version: int | None = None
    settings: Mapping[str, Any] | None = field(default=None)

    def __call__(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        grids, labels, *_ = self.make_batch(key)
        if self.pose_version is not None:
            grids = to_principal_pose(grids, self.pose_version)
        if self.settings is None:
            return np.asarray(grids, dtype=np.float32), np.asarray(labels, dtype=np.int64)
        rng = np.random.default_rng([self.seed, AUGMENT_STREAM, int(key)])
        return augment_batch(grids, rng, **self.settings), np.asarray(labels, dtype=np.int64)
