"""Procedural 3-D shapes for a 10-class voxel classification data set (numpy + scipy.ndimage).

Each sample is a solid defined in unit coordinates (it fits in the unit ball), given random proportions, a random
size (bounding radius 50-95 % of the half grid), a random position that keeps it inside the grid and a uniformly
random rotation, sampled at voxel centres. Some are hollowed to a 1-3 voxel shell and a small random fraction of
voxels is flipped (noise). Samples are seeded per (seed, class, index), so any subset is reproducible on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
