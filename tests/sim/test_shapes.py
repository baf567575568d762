"""Procedural shapes: every class, binary uint8 grids inside the volume, seeded, varied size/pose/hollowness/noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from voxelstudio.sim.shapes import SHAPE_CLASSES, generate_shapes, make_shape, random_rotation, shape_rng


def test_ten_classes_in_the_documented_order() -> None:
    assert SHAPE_CLASSES == (
        "sphere", "cube", "cylinder", "cone", "torus", "capsule", "pyramid", "tube", "cross", "ellipsoid",
    )  # fmt: skip


@pytest.mark.parametrize("kind", SHAPE_CLASSES)
def test_each_shape_is_a_binary_object_inside_the_grid(kind: str) -> None:
    for index in range(5):
        grid = make_shape(kind, shape_rng(0, SHAPE_CLASSES.index(kind), index), 32, max_flip=0.0)
        assert grid.dtype == np.uint8 and grid.shape == (32, 32, 32) and set(np.unique(grid)) <= {0, 1}
        assert grid.sum() >= 100
        border = np.ones_like(grid, dtype=bool)
        border[1:-1, 1:-1, 1:-1] = False
        assert grid[border].sum() == 0  # the object never touches the faces of the grid
        labels, _ = ndimage.label(grid, structure=np.ones((3, 3, 3)))
        assert np.bincount(labels.ravel())[1:].max() >= 0.9 * grid.sum()  # one main (26-)connected object


def test_samples_are_seeded_and_independent_of_order() -> None:
    first = [g for _, _, g in generate_shapes(3, seed=7, size=16)]
    again = [g for _, _, g in generate_shapes(3, seed=7, size=16)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    torus_only = [g for _, _, g in generate_shapes(3, seed=7, size=16, classes=("torus",))]
    np.testing.assert_array_equal(torus_only[2], first[SHAPE_CLASSES.index("torus") * 3 + 2])
    other = [g for _, _, g in generate_shapes(3, seed=8, size=16)]
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_sizes_poses_hollowness_and_noise_vary() -> None:
    cubes = [make_shape("cube", shape_rng(1, 1, i), 32, max_flip=0.0) for i in range(30)]
    volumes = [int(c.sum()) for c in cubes]
    assert max(volumes) > 3 * min(volumes)
    solid = [ndimage.binary_fill_holes(c).sum() for c in cubes]
    hollow = [s > 1.3 * v for s, v in zip(solid, volumes, strict=True)]
    assert 0 < sum(hollow) < len(cubes)  # some cubes are shells, most are solid
    centres = np.array([ndimage.center_of_mass(c) for c in cubes])
    assert centres.std(axis=0).min() > 0.5
    noisy = make_shape("sphere", shape_rng(2, 0, 0), 32, hollow_prob=0.0, max_flip=0.01)
    clean = make_shape("sphere", shape_rng(2, 0, 0), 32, hollow_prob=0.0, max_flip=0.0)
    flipped = int((noisy != clean).sum())
    assert 0 < flipped < 0.01 * noisy.size


def test_random_rotations_are_proper_and_orthonormal() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        rotation = random_rotation(rng)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_bad_requests() -> None:
    with pytest.raises(ValueError, match="unknown shape 'star'"):
        make_shape("star", np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 8"):
        make_shape("cube", np.random.default_rng(0), 4)
