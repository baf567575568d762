"""voxel_pose: the principal pose undoes a random 3-D rotation (up to flips), ignores noise, inverts; flip views; a
model for objects in any orientation predicts (nearly) the same for every 3-D pose of a grid."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.ml.classifier_config import ClassifierTrainConfig
from voxelstudio.ml.classifier_inference import predict_probabilities, view_count
from voxelstudio.ml.classifier_training import augment_settings
from voxelstudio.ml.voxel_augment import augment_grid
from voxelstudio.ml.voxel_pose import (
    FLIPS,
    POSE_VERSIONS,
    flip_views,
    principal_pose,
    quartic_form,
    quartic_frame,
    to_principal_pose,
    transverse_angle,
)
from voxelstudio.sim.shapes import SHAPE_CLASSES, make_shape, random_rotation, shape_rng

SIZE = 32


def half_ellipsoid(rotation: np.ndarray, offset: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """A half ellipsoid (semi-axes 13, 8.5, 5 voxels; cut across its middle axis), turned by ``rotation``."""
    axes = np.arange(SIZE) + 0.5 - SIZE / 2.0
    points = np.stack(np.meshgrid(axes, axes, axes, indexing="ij"), axis=-1) - np.array(offset)
    local = points @ rotation
    inside = (local[..., 0] / 13.0) ** 2 + (local[..., 1] / 8.5) ** 2 + (local[..., 2] / 5.0) ** 2 <= 1.0
    return (inside & (local[..., 1] >= -1.0)).astype(np.uint8)


def best_flip_iou(a: np.ndarray, b: np.ndarray) -> float:
    """The best intersection over union of ``a`` and any flip of ``b``."""
    scores = []
    for flips in FLIPS:
        c = np.flip(b, axis=flips) if flips else b
        scores.append((a & c).sum() / max((a | c).sum(), 1))
    return float(max(scores))


def test_principal_pose_undoes_a_random_3d_rotation() -> None:
    rng = np.random.default_rng(3)
    first, second = half_ellipsoid(random_rotation(rng), (2, -1, 1)), half_ellipsoid(random_rotation(rng))
    assert best_flip_iou(first, second) < 0.45  # as generated, the two poses differ
    posed = to_principal_pose(np.stack([first, second]))
    # the same up to voxel rounding (two nearest-neighbour resamplings of a 1,360-voxel solid), and the skew fixes
    # the axes' signs too
    assert (posed[0] & posed[1]).sum() / (posed[0] | posed[1]).sum() > 0.65
    points = np.argwhere(posed[0])
    spread = points.var(axis=0)
    assert spread[0] > spread[1] > spread[2]  # largest variance along axis 0
    np.testing.assert_allclose(points.mean(axis=0), (SIZE - 1) / 2.0, atol=1.0)


def test_noise_voxels_do_not_move_the_pose_and_invert_restores_the_grid() -> None:
    grid = half_ellipsoid(random_rotation(np.random.default_rng(5)))
    noisy = grid.copy()
    noisy[[0, 23, 0, 23], [0, 0, 23, 23], [1, 22, 5, 0]] = 1  # isolated voxels in the corners
    clean, dirty = principal_pose(grid), principal_pose(noisy)
    np.testing.assert_allclose(dirty.centroid, clean.centroid)
    np.testing.assert_allclose(dirty.axes, clean.axes)
    back = clean.invert(clean.apply(grid))
    assert (back & grid).sum() / (back | grid).sum() > 0.9
    empty = np.zeros((SIZE,) * 3, np.uint8)
    np.testing.assert_array_equal(principal_pose(empty).apply(empty), empty)


def test_flip_views_are_grid_major_flips() -> None:
    grids = np.random.default_rng(0).integers(0, 2, size=(2, 5, 6, 7)).astype(np.uint8)
    views = flip_views(grids, 8)
    assert views.shape == (16, 5, 6, 7) and views.dtype == np.float32
    np.testing.assert_array_equal(views[0], grids[0])
    np.testing.assert_array_equal(views[3], np.flip(grids[0], axis=2))
    np.testing.assert_array_equal(views[8 + 7], np.flip(grids[1], axis=(0, 1, 2)))
    with pytest.raises(ValueError, match="1-8"):
        flip_views(grids, 9)
    assert view_count(12, "any") == 8 and view_count(12, "upright") == 12 and view_count(0, "any") == 1


def test_any_orientation_augments_with_flips_of_all_axes_and_no_turn() -> None:
    cfg = ClassifierTrainConfig.for_arch("voxnet", model_overrides={"orientation": "any"})
    settings = augment_settings(cfg)
    assert settings["rotations"] == 1 and settings["flip_axes"] == (0, 1, 2)
    assert augment_settings(ClassifierTrainConfig.for_arch("voxnet"))["rotations"] == 12
    grid = half_ellipsoid(np.eye(3))
    flipped = augment_grid(grid, np.random.default_rng(0), rotations=1, flip_prob=1.0, max_shift=0, flip_axes=(2,))
    np.testing.assert_array_equal(flipped, np.flip(grid, axis=2))
    with pytest.raises(ValueError, match="orientation"):
        ClassifierTrainConfig.for_arch("voxnet", model_overrides={"orientation": "sideways"})


class SpreadModel:
    """A stand-in classifier whose 'probabilities' are the input's spread along each axis (flip-invariant, not
    rotation-invariant): what the network sees decides its output."""

    def __init__(self) -> None:
        self.outputs = [np.zeros((1, 3))]

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        grids = batch[..., 0]
        spread = []
        for grid in grids:
            points = np.argwhere(grid > 0.5).astype(np.float64)
            spread.append(points.var(axis=0) if len(points) else np.ones(3))
        spread = np.array(spread)
        return spread / spread.sum(axis=1, keepdims=True)


def test_any_orientation_predicts_the_same_for_every_3d_pose() -> None:
    rng = np.random.default_rng(7)
    long_x = half_ellipsoid(np.eye(3))
    long_z = half_ellipsoid(np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]))  # long axis along z
    grids = np.stack([long_x, long_z, half_ellipsoid(random_rotation(rng))])
    upright = predict_probabilities(SpreadModel(), grids, rotations=12)  # turns about z cannot undo a tilt
    assert np.abs(upright[0] - upright[1]).max() > 0.3
    posed = predict_probabilities(SpreadModel(), grids, rotations=8, orientation="any")
    assert np.abs(posed - posed[0]).max() < 0.05
    assert posed[0].argmax() == 0  # the long axis lies along axis 0 in the principal pose


def square_pyramid(rotation: np.ndarray, half_base: float, height: float) -> np.ndarray:
    """A solid square pyramid (base 2 * ``half_base`` wide, apex ``height`` above it, centred), turned by
    ``rotation``."""
    axes = np.arange(SIZE) + 0.5 - SIZE / 2.0
    local = np.stack(np.meshgrid(axes, axes, axes, indexing="ij"), axis=-1) @ rotation
    along = local[..., 2] + height / 4.0  # the centroid sits a quarter of the height above the base
    extent = np.maximum(np.abs(local[..., 0]), np.abs(local[..., 1]))
    return ((along >= 0) & (along <= height) & (extent <= half_base * (1.0 - along / height))).astype(np.uint8)


def about_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize(
    ("half_base", "height"),
    [(7.0, 16.0), (7.0, 20.0)],  # second moments nearly equal in all directions; a pair equal across a long axis
)
def test_a_square_pyramid_poses_the_same_however_it_is_turned_about_its_axis(half_base: float, height: float) -> None:
    """The second moments leave a square pyramid's turn about its axis free (and, when they are nearly equal in
    every direction, its axis too); the skew direction and the 4-fold harmonic fix both, up to the flips."""
    rng = np.random.default_rng(21)
    tilt = random_rotation(rng)
    grids = np.stack([square_pyramid(tilt @ about_z(a), half_base, height) for a in rng.uniform(0, np.pi / 2, 4)])
    assert best_flip_iou(grids[0], grids[1]) < 0.8  # as generated, they differ
    posed = to_principal_pose(grids)
    scores = [best_flip_iou(posed[0], other) for other in posed[1:]]
    assert min(scores) > 0.8, scores
    pose = principal_pose(grids[0])
    assert abs(pose.axes[:, 0] @ tilt[:, 2]) > 0.99 or abs(pose.axes[:, 2] @ tilt[:, 2]) > 0.99  # the axis is found


def test_transverse_angle_keeps_an_elongated_section_and_turns_a_square_to_its_diagonal() -> None:
    a, b = np.meshgrid(np.linspace(-6, 6, 25), np.linspace(-2, 2, 9), indexing="ij")
    assert abs(transverse_angle(a.ravel(), b.ravel())) < 0.01
    side = np.linspace(-5, 5, 21)
    a, b = (v.ravel() for v in np.meshgrid(side, side, indexing="ij"))
    for turn in (0.0, 0.3, -0.6):
        c, s = np.cos(turn), np.sin(turn)
        angle = transverse_angle(c * a - s * b, s * a + c * b)
        # the turned frame puts a diagonal on the first axis: the turn lands on turn + pi/4 modulo a quarter turn
        assert abs(np.angle(np.exp(4j * (angle - turn - np.pi / 4)))) < 0.02


def solid_cube(rotation: np.ndarray, half: float = 8.0) -> np.ndarray:
    """A solid cube (side 2 * ``half``, centred), turned by ``rotation``."""
    axes = np.arange(SIZE) + 0.5 - SIZE / 2.0
    local = np.stack(np.meshgrid(axes, axes, axes, indexing="ij"), axis=-1) @ rotation
    return (np.abs(local).max(axis=-1) <= half).astype(np.uint8)


def test_a_cube_poses_the_same_however_it_is_turned_and_version_2_did_not() -> None:
    """A cube's second moments are isotropic and its third ones zero: only its fourth moments give it a frame."""
    rng = np.random.default_rng(4)
    grids = np.stack([solid_cube(random_rotation(rng)) for _ in range(4)])
    old, new = to_principal_pose(grids, version=2), to_principal_pose(grids)
    assert min(best_flip_iou(old[0], other) for other in old[1:]) < 0.8
    assert min(best_flip_iou(new[0], other) for other in new[1:]) > 0.9
    cube = np.argwhere(new[0]).astype(np.float64)
    extent = cube.max(axis=0) - cube.min(axis=0) + 1
    assert extent.max() <= 18  # faces across the axes: a 16-voxel box (+ rounding), not 16 * sqrt(2) or more wide
    with pytest.raises(ValueError, match="pose version 1"):
        principal_pose(grids[0], version=1)
    assert POSE_VERSIONS[-1] == 3


def test_the_quartic_frame_of_turned_points_turns_with_them() -> None:
    rng = np.random.default_rng(8)
    corners = np.array(np.meshgrid(*[np.linspace(-1, 1, 9)] * 3, indexing="ij")).reshape(3, -1).T  # a cube of points
    turn = random_rotation(rng)
    # the cube turned by ``turn``: its faces' normals are turn's columns
    axes = quartic_frame(quartic_form(corners @ turn.T))
    assert np.allclose(np.sort(np.abs(axes.T @ turn).max(axis=1)), 1.0, atol=1e-3)


def test_only_cubes_and_spheres_change_pose_from_version_2() -> None:
    """Every other procedural class has a symmetry axis or skew its version-2 pose already uses."""
    changed = {}
    for index, name in enumerate(SHAPE_CLASSES):
        grids = [make_shape(name, shape_rng(3, index, i)) for i in range(8)]
        changed[name] = sum(not np.allclose(principal_pose(g).axes, principal_pose(g, version=2).axes) for g in grids)
    assert changed["cube"] >= 7 and all(n == 0 for name, n in changed.items() if name not in ("cube", "sphere"))


class DiagonalModel:
    """A stand-in classifier whose 'probabilities' are the share of the input inside a slab along the grid's xy
    diagonal: it tells a cube with its faces across the axes from a turned one."""

    def __init__(self) -> None:
        self.outputs = [np.zeros((1, 2))]

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        i, j, _ = np.meshgrid(*[np.arange(SIZE)] * 3, indexing="ij")
        slab = np.abs(i - j) < 4
        inside = (batch[..., 0] * slab).sum(axis=(1, 2, 3))
        share = inside / np.maximum(batch[..., 0].sum(axis=(1, 2, 3)), 1)
        return np.stack([share, 1 - share], axis=1)


def test_prediction_poses_grids_as_the_models_pose_version_did() -> None:
    grids = np.stack([solid_cube(random_rotation(np.random.default_rng(s))) for s in (5, 6)])
    for version in POSE_VERSIONS:
        found = predict_probabilities(DiagonalModel(), grids, orientation="any", pose_version=version)
        expected = DiagonalModel().predict_on_batch(to_principal_pose(grids, version)[..., None].astype(np.float32))
        np.testing.assert_allclose(found, expected, atol=1e-6)
    old, new = (predict_probabilities(DiagonalModel(), grids, orientation="any", pose_version=v) for v in (2, 3))
    assert np.abs(old - new).max() > 0.01
