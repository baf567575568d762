"""Pose normalisation of occupancy grids whose objects come in any 3-D orientation (numpy/scipy only).

A classifier with ``orientation="any"`` sees every grid turned onto the principal axes of its largest connected
object (largest variance along axis 0, smallest along axis 2, each axis pointing towards the object's positive third
moment; for symmetric and skewed objects see below) with that object's centroid at the grid centre. Turning about z
(VoxNet's augmentation for upright CAD models) covers one of the three rotational degrees of freedom; the pose
covers all three up to the axes' signs, which augmentation and voting cover with flips (:func:`flip_views`). Voxels
are looked up nearest-neighbour; voxels that come from outside the grid are empty.

Second moments alone leave two things free. When two of them are equal (a cone, a square pyramid, a cross, a square
prism), the object comes out turned at random about the third axis, so the pose turns the pair of axes whose
moments are closest about the remaining axis to the angle that maximises the sum of the normalised 2- and 4-fold
angular harmonics of the object's voxels about it (:func:`transverse_angle`): an elongated section keeps its
principal axes, a square one gets its diagonal along axis 1 (up to a quarter turn, which maps it onto itself), a
round one turns where its voxel rounding says, which does not matter. When all three are nearly equal (a squat cone
or pyramid), the second moments do not find the symmetry axis at all; the direction of the largest third moment
(:func:`skew_direction`) does, so it becomes axis 0 whenever the object's skewness along it exceeds the largest gap
between the normalised second moments (0 for objects symmetric about their centre, whose pose stays as above).
When all three second moments are nearly equal and the object is not skewed (a cube), neither finds its frame; its
fourth moments do: the frame is the turn that minimises the summed fourth moments along its axes
(:func:`quartic_frame`), which puts a cube's faces across the axes, whenever the spread of the fourth moment over
directions exceeds both the gap between the second moments and the skewness several times (:data:`QUARTIC_RATIO`).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

POSE_VERSION = 3
"""The pose this module computes; a classifier trained on posed grids records it (1: principal axes and third
moments only; 2: also the turn about a symmetry axis and the skew axis of squat objects; 3: also the fourth-moment
frame of objects with isotropic second moments, below). A model trained on another version's poses would see grids
posed unlike its training set, so prediction poses grids with the model's version (:data:`POSE_VERSIONS`)."""
POSE_VERSIONS = (2, 3)
"""The versions :func:`principal_pose` can still compute."""
MAX_REFINE_STEPS = 20
"""Small turns of one size tried in a row at most while refining the fourth-moment frame."""
QUARTIC_RATIO = 3.0
"""The fourth-moment frame is taken when the spread of the normalised fourth moment over directions exceeds this
many times both the largest gap between the normalised second moments and the skewness: cubes 0.08-0.11 against
gaps of 0.002-0.014 and skewness below 0.01; spheres 0.004-0.011 against 0.001-0.006 (either frame will do); every
other procedural shape stays below (at most 2.3 times, measured on 25 of each class)."""
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


def principal_pose(grid: np.ndarray, version: int = POSE_VERSION) -> Pose:
    """The principal frame of the largest connected object of ``grid`` (the identity at the centre when empty).
    Isolated noise voxels are other components, so they move neither the centroid nor the axes.

    The frame's first choice is a symmetry axis: the second-moment axis whose eigenvalue stands furthest from the
    other two (by that gap, relative to the trace), unless the object's skewness along its most skewed direction
    (:func:`skew_direction`) is larger, as for a cone or pyramid whose moments are nearly equal in all directions;
    then that direction is axis 0. The other two axes are the principal axes across it, turned about it by
    :func:`transverse_angle`; each axis points towards the object's positive third moment along it. Under
    ``version`` 3, an unskewed object whose second moments are nearly equal gets its fourth-moment frame instead
    (:func:`quartic_frame`; axes ordered by variance)."""
    if version not in POSE_VERSIONS:
        raise ValueError(f"pose version {version} is not one of {POSE_VERSIONS}")
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
    cov = offsets.T @ offsets / len(points)
    trace = max(float(np.trace(cov)), 1e-12)
    values, vectors = np.linalg.eigh(cov)
    values, vectors = values[::-1] / trace, vectors[:, ::-1]  # eigh sorts ascending
    direction, skewness = skew_direction(offsets, trace)
    gap = max(values[0] - values[1], values[1] - values[2])
    form = quartic_form(offsets) if version >= 3 else None
    if form is not None and quartic_spread(form, trace) > QUARTIC_RATIO * max(gap, skewness):
        axes = quartic_frame(form)
        axes = axes[:, np.argsort(-((offsets @ axes) ** 2).sum(axis=0), kind="stable")]  # largest variance first
    else:
        axes = _symmetry_frame(offsets, cov, values, vectors, direction if skewness > gap else None)
    skew = ((offsets @ axes) ** 3).sum(axis=0)
    return Pose(axes * np.where(skew < 0, -1.0, 1.0), centroid)


def _symmetry_frame(
    offsets: np.ndarray, cov: np.ndarray, values: np.ndarray, vectors: np.ndarray, skew_axis: np.ndarray | None
) -> np.ndarray:
    """Axes (columns) from the second moments (``values`` normalised and ``vectors``, largest first), ``skew_axis``
    first when given, the pair across the most isolated axis turned by :func:`transverse_angle`."""
    if skew_axis is not None:
        plane = np.eye(3) - np.outer(skew_axis, skew_axis)
        across = np.linalg.eigh(plane @ cov @ plane)[1]
        slots, pair = [skew_axis, across[:, 2], across[:, 1]], (1, 2)  # the plane's larger variance first
    else:
        slots, pair = [vectors[:, 0], vectors[:, 1], vectors[:, 2]], (1, 2)
        if values[0] - values[1] < values[1] - values[2]:  # the smallest moment stands apart: turn about axis 2
            pair = (0, 1)
    first, second = slots[pair[0]], slots[pair[1]]
    angle = transverse_angle(offsets @ first, offsets @ second)
    slots[pair[0]] = np.cos(angle) * first + np.sin(angle) * second
    slots[pair[1]] = -np.sin(angle) * first + np.cos(angle) * second
    return np.stack(slots, axis=1)


_QUARTIC_EXPONENTS = np.array([(a, b, 4 - a - b) for a in range(5) for b in range(5 - a)])
_QUARTIC_MULTINOMIALS = np.array([24.0 / math.prod(math.factorial(int(e)) for e in row) for row in _QUARTIC_EXPONENTS])


def _monomials(points: np.ndarray) -> np.ndarray:
    """(N, 15): the degree-4 monomials x^a y^b z^c (a + b + c = 4) of each row of ``points`` (N, 3)."""
    steps = np.broadcast_to(points[:, :, None], (*points.shape, 4))
    powers = np.concatenate([np.ones((*points.shape, 1)), np.cumprod(steps, axis=2)], axis=2)  # (N, 3, 5)
    a, b, c = _QUARTIC_EXPONENTS.T
    return powers[:, 0, a] * powers[:, 1, b] * powers[:, 2, c]


def quartic_form(offsets: np.ndarray) -> np.ndarray:
    """The 15 coefficients f of mean((u . x)^4) = monomials(u) @ f over the centred points ``offsets``."""
    return _monomials(offsets).mean(axis=0) * _QUARTIC_MULTINOMIALS


def _frame_sums(monomials: np.ndarray, form: np.ndarray) -> np.ndarray:
    """Per frame, the sum of mean((axis . x)^4) over its three axes, from the monomials of the frames' rows."""
    return (monomials @ form).reshape(-1, 3).sum(axis=1)


@functools.lru_cache(maxsize=1)
def _half_sphere_monomials() -> np.ndarray:
    return _monomials(_half_sphere())


def quartic_spread(form: np.ndarray, trace: float) -> float:
    """max - min over directions u of mean((u . x)^4) (``form``: :func:`quartic_form`), over trace^2
    (dimensionless): about 0.09 for a cube, 0 for a sphere; large for elongated objects too, whose second moments
    already fix their frame."""
    values = _half_sphere_monomials() @ form  # u and -u alike: a half sphere covers all
    return float((values.max() - values.min()) / trace**2)


@functools.lru_cache(maxsize=1)
def _rotations(count: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """``count`` rotations spread at random over all of them (fixed seed; rows are the turned axes) and the degree-4
    monomials of their rows, (count * 3, 15)."""
    w, x, y, z = np.random.default_rng(12345).normal(size=(4, count))
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    rows = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=1)  # fmt: skip
    return rows, _monomials(rows.reshape(-1, 3))


@functools.lru_cache(maxsize=8)
def _small_turns(size: float) -> np.ndarray:
    """(27, 3, 3), transposed: the turns whose rotation vector has each component -``size``, 0 or ``size`` radians
    (the identity among them, at index 13), as matrices that turn row vectors (``rows @ turns[i]``)."""
    turns = []
    for vector in itertools.product((-size, 0.0, size), repeat=3):
        angle = float(np.linalg.norm(vector))
        if angle == 0.0:
            turns.append(np.eye(3))
            continue
        k = np.asarray(vector) / angle
        cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
        turns.append(np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross)
    transposed = np.transpose(np.stack(turns), (0, 2, 1))
    transposed.flags.writeable = False  # shared by every call (cached)
    return transposed


def quartic_frame(form: np.ndarray) -> np.ndarray:
    """Axes (columns) minimising the sum of mean((axis . x)^4) over the three axes (``form``:
    :func:`quartic_form` of the points): a cube's face normals (its diagonals maximise it). The best of
    :func:`_rotations` (about 6 degrees apart up to a cube's 24 symmetries), refined by small turns at falling step
    sizes, each repeated while it improves."""
    rows, monomials = _rotations()
    best = rows[int(np.argmin(_frame_sums(monomials, form)))]
    for size in (0.06, 0.025, 0.01, 0.004):
        for _ in range(MAX_REFINE_STEPS):
            trial = best[None] @ _small_turns(size)  # the identity is trial 13
            scores = _frame_sums(_monomials(trial.reshape(-1, 3)), form)
            if scores.min() >= scores[13]:
                break
            best = trial[int(scores.argmin())]
    return best.T


@functools.lru_cache(maxsize=1)
def _half_sphere(count: int = 600) -> np.ndarray:
    """(count, 3) unit vectors spread evenly over a half sphere (a Fibonacci lattice)."""
    index = np.arange(count) + 0.5
    polar, turn = np.arccos(1.0 - index / count), np.pi * (1.0 + 5.0**0.5) * index
    return np.stack([np.cos(turn) * np.sin(polar), np.sin(turn) * np.sin(polar), np.cos(polar)], axis=1)


def skew_direction(offsets: np.ndarray, trace: float) -> tuple[np.ndarray, float]:
    """(unit u, s): the direction u of the largest third moment mean((u . x)^3) of the centred points, and that
    moment over trace^1.5 (dimensionless; 0 for an object symmetric about its centre, 0.1-0.25 for a cone or a
    pyramid, along its axis). The best of a half-sphere lattice (about 5 degrees apart), refined by searching a
    3x3 fan of tilts about it at falling step sizes."""
    tensor = np.einsum("ni,nj,nk->ijk", offsets, offsets, offsets, optimize=True) / len(offsets)

    def moment(directions: np.ndarray) -> np.ndarray:
        return np.einsum("ijk,di,dj,dk->d", tensor, directions, directions, directions, optimize=True)

    lattice = moment(_half_sphere())
    best = int(np.argmax(np.abs(lattice)))
    direction = _half_sphere()[best] * (1.0 if lattice[best] >= 0 else -1.0)
    steps = np.array([(i, j) for i in (-1.0, 0.0, 1.0) for j in (-1.0, 0.0, 1.0)])
    for size in (0.05, 0.02, 0.008, 0.003):
        tangent = np.linalg.svd(direction[None, :])[2][1:]  # two unit vectors across ``direction``
        fan = direction + size * steps @ tangent
        fan /= np.linalg.norm(fan, axis=1, keepdims=True)
        direction = fan[int(np.argmax(moment(fan)))]
    return direction, float(moment(direction[None, :])[0] / trace**1.5)


def transverse_angle(a: np.ndarray, b: np.ndarray, steps: int = 720) -> float:
    """The turn (radians, in [-pi/4, pi/4)) of the plane of the principal coordinates (``a``, ``b``; ``a`` the
    larger variance) that maximises Re(m2 e^(-2i angle)) + Re(m4 e^(-4i angle)), where m_k = sum(z^k) / sum(|z|^k),
    z = a + ib: the normalised 2- and 4-fold angular harmonics of the points. Within those bounds the turned ``a``
    keeps the larger variance. 0 for an elongated section symmetric about its axes; a square section's diagonal
    (its 4-fold maximum, of which one lies in any quarter turn); the first of ``steps`` equal angles that maximises.
    """
    z = a + 1j * b
    power = np.abs(z) ** 2
    if power.sum() <= 0:
        return 0.0
    m2, m4 = (z**2).sum() / power.sum(), (z**4).sum() / max((power**2).sum(), 1e-12)
    angles = (np.arange(steps) / steps - 0.5) * (np.pi / 2)
    score = (m2 * np.exp(-2j * angles)).real + (m4 * np.exp(-4j * angles)).real
    return float(angles[int(np.argmax(score))])


def to_principal_pose(grids: np.ndarray, version: int = POSE_VERSION) -> np.ndarray:
    """Every grid of a batch (N, H, W, Z) in its own principal frame (same dtype), posed as ``version`` poses."""
    grids = np.asarray(grids)
    if grids.ndim != 4:
        raise ValueError(f"expected a batch of grids (N, H, W, Z), got shape {grids.shape}")
    return np.stack([principal_pose(grid, version).apply(grid) for grid in grids]) if len(grids) else grids.copy()


def flip_views(grids: np.ndarray, count: int) -> np.ndarray:
    """(N * count, H, W, Z) float32, grid-major: each grid under the first ``count`` (1-8) of :data:`FLIPS`."""
    grids = np.asarray(grids)
    if not 1 <= count <= len(FLIPS):
        raise ValueError(f"flip views: count must be 1-{len(FLIPS)}, got {count}")
    views = [np.flip(grids, axis=tuple(a + 1 for a in flips)) if flips else grids for flips in FLIPS[:count]]
    return np.stack(views, axis=1).reshape(-1, *grids.shape[1:]).astype(np.float32)
