"""Procedural shapes: every class, binary uint8 grids inside the volume, seeded, varied size/pose/hollowness/noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from voxelstudio.sim.shapes import (
    SHAPE_CLASSES,
    ShapeStream,
    generate_shapes,
    harden_grid,
    make_shape,
    random_rotation,
    shape_rng,
)


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


def _solid_sphere(size: int = 20) -> np.ndarray:
    """A ball touching all but the outermost planes of the grid."""
    centre = np.arange(size) - (size - 1) / 2
    y, x, z = np.meshgrid(centre, centre, centre, indexing="ij")
    return (y**2 + x**2 + z**2 <= (size / 2 - 1) ** 2).astype(np.uint8)


def test_harden_keeps_the_surface_only() -> None:
    solid = _solid_sphere()
    surface = harden_grid(solid, np.random.default_rng(0), surface_prob=1.0, occlusion_prob=0.0, flip=0.0)
    np.testing.assert_array_equal(surface, solid & ~ndimage.binary_erosion(solid))
    assert 0 < surface.sum() < 0.7 * solid.sum() and surface.dtype == np.uint8


def _empty_edge_planes(grid: np.ndarray) -> int:
    """The longest run of empty planes from any face of the grid."""
    runs = []
    for axis in range(3):
        filled = grid.sum(axis=tuple(a for a in range(3) if a != axis)) > 0
        runs += [int(np.argmax(filled)), int(np.argmax(filled[::-1]))]
    return max(runs)


def test_harden_occludes_a_slab_of_the_grid() -> None:
    solid = _solid_sphere()
    assert _empty_edge_planes(solid) == 1
    for seed in range(6):
        cut = harden_grid(solid, np.random.default_rng(seed), surface_prob=0.0, occlusion_prob=1.0, flip=0.0)
        assert np.all(cut <= solid)  # only removed
        assert 3 <= _empty_edge_planes(cut) <= 8  # 15-40 % of the 20 planes cut off beyond a plane


def test_harden_flips_the_given_share_of_voxels() -> None:
    solid = _solid_sphere()
    noisy = harden_grid(solid, np.random.default_rng(1), surface_prob=0.0, occlusion_prob=0.0, flip=0.1)
    assert np.mean(noisy != solid) == pytest.approx(0.1, abs=0.01)


def test_the_shape_stream_is_seeded_per_key_and_balanced() -> None:
    stream = ShapeStream(batch_size=20, size=16, seed=3)
    grids, labels = stream(5)
    again, same = stream(5)
    np.testing.assert_array_equal(grids, again)
    np.testing.assert_array_equal(labels, same)
    assert grids.shape == (20, 16, 16, 16) and grids.dtype == np.uint8 and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == [2] * 10  # a whole number of runs: every class twice
    other, _ = stream(6)
    assert not np.array_equal(grids, other)
    assert not np.array_equal(ShapeStream(batch_size=20, size=16, seed=4)(5)[0], grids)
    counts = np.bincount(ShapeStream(batch_size=7, size=8)(0)[1], minlength=10)
    assert counts.max() == 1 and counts.sum() == 7  # 7 of the 10 classes, each once


def test_hard_shapes_in_the_stream_are_the_same_shapes_thinner_or_cut() -> None:
    plain, labels = ShapeStream(batch_size=30, size=32, seed=0, hard_prob=0.0)(0)
    hard, same = ShapeStream(batch_size=30, size=32, seed=0, hard_prob=1.0)(0)
    np.testing.assert_array_equal(labels, same)
    thinner = [(h < p).sum() > 0.1 * p.sum() for h, p in zip(hard, plain, strict=True)]
    assert np.mean(thinner) > 0.35  # surfaces and cuts remove voxels (3 in 4 grids get one or both) ...
    assert np.mean(hard > plain) < 0.01  # ... and only the noise adds any
    assert all(not np.array_equal(h, p) for h, p in zip(hard, plain, strict=True))


def test_the_shape_stream_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="hard_prob"):
        ShapeStream(hard_prob=1.5)
    with pytest.raises(ValueError, match="unknown shape classes"):
        ShapeStream(classes=("sphere", "blob"))
    with pytest.raises(ValueError, match="batch_size"):
        ShapeStream(batch_size=0)
