"""Procedural 3-D shapes for a 10-class voxel classification data set (numpy + scipy.ndimage).

Each sample is a solid defined in unit coordinates (it fits in the unit ball), given random proportions, a random
size (bounding radius 50-95 % of the half grid), a random position that keeps it inside the grid and a uniformly
random rotation, sampled at voxel centres. Some are hollowed to a 1-3 voxel shell and a small random fraction of
voxels is flipped (noise). Samples are seeded per (seed, class, index), so any subset is reproducible on its own.

:func:`harden_grid` makes a grid harder as scans and voxelised meshes are: surface only, partly occluded (cut off
beyond a plane), noisier. :class:`ShapeStream` is an endless seeded stream of labelled batches of such shapes for
training without a fixed set (a batch function for ``voxelstudio.ml.sim_dataset.SimulatedPatches``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SHAPE_CLASSES = (
    "sphere", "cube", "cylinder", "cone", "torus", "capsule", "pyramid", "tube", "cross", "ellipsoid",
)  # fmt: skip

Coords = tuple[np.ndarray, np.ndarray, np.ndarray]
Solid = Callable[[Coords, np.random.Generator, float], np.ndarray]
"""(u0, u1, u2 in unit coordinates, rng, one voxel in unit lengths) -> boolean occupancy."""


def _radial(u: Coords) -> np.ndarray:
    return np.sqrt(u[0] ** 2 + u[1] ** 2)


def _sphere(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    return u[0] ** 2 + u[1] ** 2 + u[2] ** 2 <= 1.0


def _cube(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    half = 1.0 / np.sqrt(3.0)
    return np.maximum(np.maximum(abs(u[0]), abs(u[1])), abs(u[2])) <= half


def _cylinder(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    radius = rng.uniform(0.45, 0.7)
    return (_radial(u) <= radius) & (abs(u[2]) <= np.sqrt(1.0 - radius**2))


def _cone(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    radius, half = rng.uniform(0.55, 0.75), rng.uniform(0.55, 0.65)
    return (abs(u[2]) <= half) & (_radial(u) <= radius * (half - u[2]) / (2.0 * half))


def _torus(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    ring = rng.uniform(0.62, 0.72)
    tube = max(1.0 - ring, 1.2 * vox)
    return (_radial(u) - ring) ** 2 + u[2] ** 2 <= tube**2


def _capsule(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    radius = rng.uniform(0.3, 0.45)
    along = np.clip(u[2], -(1.0 - radius), 1.0 - radius)
    return u[0] ** 2 + u[1] ** 2 + (u[2] - along) ** 2 <= radius**2


def _pyramid(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    base, half = rng.uniform(0.42, 0.53), rng.uniform(0.55, 0.65)
    extent = np.maximum(abs(u[0]), abs(u[1]))
    return (abs(u[2]) <= half) & (extent <= base * (half - u[2]) / (2.0 * half))


def _tube(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    outer = rng.uniform(0.45, 0.65)
    inner = min(outer * rng.uniform(0.5, 0.75), outer - 1.5 * vox)
    radial = _radial(u)
    return (radial <= outer) & (radial >= inner) & (abs(u[2]) <= np.sqrt(1.0 - outer**2))


def _cross(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    thick = max(rng.uniform(0.15, 0.28), 1.0 * vox)
    arm = np.sqrt(max(1.0 - 2.0 * thick**2, thick**2))
    flat = abs(u[2]) <= thick
    return flat & (((abs(u[0]) <= arm) & (abs(u[1]) <= thick)) | ((abs(u[1]) <= arm) & (abs(u[0]) <= thick)))


def _ellipsoid(u: Coords, rng: np.random.Generator, vox: float) -> np.ndarray:
    b, c = rng.uniform(0.45, 0.65), rng.uniform(0.25, 0.4)
    return u[0] ** 2 + (u[1] / b) ** 2 + (u[2] / c) ** 2 <= 1.0


SOLIDS: dict[str, Solid] = dict(
    zip(
        SHAPE_CLASSES,
        (_sphere, _cube, _cylinder, _cone, _torus, _capsule, _pyramid, _tube, _cross, _ellipsoid),
        strict=True,
    )
)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3x3 rotation matrix (QR of a Gaussian matrix, signs fixed, det +1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def make_shape(
    kind: str,
    rng: np.random.Generator,
    size: int = 32,
    *,
    hollow_prob: float = 0.3,
    max_flip: float = 0.004,
) -> np.ndarray:
    """One random ``kind`` shape as a uint8 occupancy grid (size, size, size)."""
    if kind not in SOLIDS:
        raise ValueError(f"unknown shape {kind!r}; choose from {', '.join(SHAPE_CLASSES)}")
    if size < 8:
        raise ValueError(f"shape grids must be at least 8 voxels wide, got {size}")
    half = size / 2.0 - 1.0
    radius = rng.uniform(0.5, 0.95) * half
    centre = size / 2.0 + rng.uniform(-1.0, 1.0, size=3) * (half - radius)
    axes = np.arange(size, dtype=np.float64) + 0.5
    points = np.stack(np.meshgrid(axes, axes, axes, indexing="ij"), axis=-1) - centre
    local = points @ random_rotation(rng) / radius  # coordinates in the shape's own frame, unit bounding radius
    solid = SOLIDS[kind]((local[..., 0], local[..., 1], local[..., 2]), rng, 1.0 / radius)
    if kind != "tube" and rng.random() < hollow_prob:
        interior = ndimage.binary_erosion(solid, iterations=int(rng.integers(1, 4)))
        solid = solid & ~interior
    flips = rng.random(solid.shape) < rng.uniform(0.0, max_flip)
    return (solid ^ flips).astype(np.uint8)


def shape_rng(seed: int, class_index: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of class ``class_index`` under ``seed``."""
    return np.random.default_rng([seed, class_index, index])


def generate_shapes(
    per_class: int, seed: int = 0, size: int = 32, classes: tuple[str, ...] = SHAPE_CLASSES
) -> Iterator[tuple[str, int, np.ndarray]]:
    """(class, index, grid) for ``per_class`` samples of each class, class by class."""
    for name in classes:
        class_index = SHAPE_CLASSES.index(name)
        for index in range(per_class):
            yield name, index, make_shape(name, shape_rng(seed, class_index, index), size)


def harden_grid(
    grid: np.ndarray,
    rng: np.random.Generator,
    *,
    surface_prob: float = 0.5,
    occlusion_prob: float = 0.5,
    flip: float = 0.003,
) -> np.ndarray:
    """``grid`` (uint8 occupancy) made harder: with ``surface_prob`` only its surface kept, with ``occlusion_prob``
    everything beyond a random grid plane cut off (60-85 % of the grid kept, from either side of one axis), then a
    ``flip`` share of voxels flipped."""
    out = np.asarray(grid).astype(bool)
    if rng.random() < surface_prob:
        out &= ~ndimage.binary_erosion(out)
    if rng.random() < occlusion_prob:
        axis, cut = int(rng.integers(3)), int(rng.uniform(0.6, 0.85) * out.shape[0])
        index: list[slice] = [slice(None)] * 3
        index[axis] = slice(cut, None) if rng.random() < 0.5 else slice(0, out.shape[0] - cut)
        out[tuple(index)] = False
    out ^= rng.random(out.shape) < flip
    return out.astype(np.uint8)


SHAPE_BATCH_STREAM = 3
"""Second element of the ``[seed, stream, key]`` random stream of :class:`ShapeStream`'s batches."""


@dataclass(frozen=True)
class ShapeStream:
    """An endless, seeded stream of labelled shape batches: ``stream(key) -> (grids uint8 (B, S, S, S), labels)``.

    Batch ``key`` depends on nothing but the stream and the key, so it is the same in any worker and order. Each
    batch holds every class about equally (a shuffled run of the classes from a random one), each shape drawn by
    :func:`make_shape` (random size, position, rotation, proportions, hollowing, noise) and then, with
    ``hard_prob``, made harder by :func:`harden_grid` (surface only with probability 1/2, partly occluded with
    probability 1/2, independently, and noisier; from a random stream of its own, so the same key gives the same
    shapes whatever ``hard_prob``).
    """

    batch_size: int = 32
    size: int = 32
    seed: int = 0
    hard_prob: float = 0.3
    classes: tuple[str, ...] = SHAPE_CLASSES

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.size < 8:
            raise ValueError(f"batch_size must be >= 1 and size >= 8, got {self.batch_size} and {self.size}")
        if not 0.0 <= self.hard_prob <= 1.0:
            raise ValueError(f"hard_prob must be in [0, 1], got {self.hard_prob}")
        unknown = [name for name in self.classes if name not in SOLIDS]
        if unknown or not self.classes:
            raise ValueError(f"unknown shape classes {unknown}; choose from {', '.join(SHAPE_CLASSES)}")

    def __call__(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        stream = [self.seed, SHAPE_BATCH_STREAM, int(key)]
        rng = np.random.default_rng(stream)
        n = len(self.classes)
        labels = rng.permutation((np.arange(self.batch_size) + int(rng.integers(n))) % n)
        grids = np.empty((self.batch_size, self.size, self.size, self.size), dtype=np.uint8)
        for i, label in enumerate(labels):
            # five-word seeds: numpy pads shorter ones with zeros, so [*stream, 0] would repeat the labels' stream
            grids[i] = make_shape(self.classes[label], np.random.default_rng([*stream, i, 0]), self.size)
            harder = np.random.default_rng([*stream, i, 1])  # its own stream: the shape is the same either way
            if harder.random() < self.hard_prob:
                grids[i] = harden_grid(grids[i], harder)
        return grids, labels.astype(np.int64)
