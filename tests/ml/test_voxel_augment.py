"""voxel_augment: exact quarter turns, 30-degree steps, shifts without wrap-around, augmentation, voting invariance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from voxelstudio.ml.voxel_augment import (
    AUGMENT_STREAM,
    AugmentedBatches,
    augment_batch,
    augment_grid,
    rotate_vertical,
    shift,
    vertical_rotations,
    vote,
)
from voxelstudio.ml.voxel_pose import to_principal_pose


def _grid(seed: int = 0, size: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = np.zeros((size, size, size), dtype=np.uint8)
    grid[2:9, 3:6, 1:10] = 1  # an off-centre bar, so every rotation differs
    grid[rng.random(grid.shape) < 0.05] = 1
    return grid


def test_quarter_turns_are_rot90_in_the_horizontal_plane() -> None:
    grid = _grid()
    for quarter in range(4):
        np.testing.assert_array_equal(rotate_vertical(grid, 90 * quarter), np.rot90(grid, quarter, axes=(0, 1)))
    np.testing.assert_array_equal(rotate_vertical(grid, 360), grid)
    np.testing.assert_array_equal(rotate_vertical(grid, -90), np.rot90(grid, 3, axes=(0, 1)))


def test_thirty_degree_steps_keep_occupancy_binary_and_roughly_the_volume() -> None:
    grid = np.zeros((16, 16, 6), dtype=np.uint8)
    grid[4:12, 4:12, 1:5] = 1
    rotated = rotate_vertical(grid, 30)
    assert set(np.unique(rotated)) <= {0, 1}
    assert not np.array_equal(rotated, grid)
    assert abs(int(rotated.sum()) - int(grid.sum())) <= 0.15 * grid.sum()
    np.testing.assert_array_equal(rotated[:, :, 0], 0)  # rotation about z never moves voxels between slices


def test_rotations_of_a_rotated_grid_are_the_same_set() -> None:
    grid = _grid(1)
    own = vertical_rotations(grid, 12)
    turned = vertical_rotations(np.rot90(grid, 1, axes=(0, 1)), 12)
    for k in range(12):  # rotation k of rot90(x) is rotation k + 3 (90 degrees more) of x
        np.testing.assert_array_equal(turned[k], own[(k + 3) % 12])


def test_rotation_needs_a_square_horizontal_plane() -> None:
    with pytest.raises(ValueError, match="N, N, Z"):
        rotate_vertical(np.zeros((4, 5, 6)), 90)


def test_shift_moves_without_wrapping() -> None:
    grid = np.zeros((5, 5, 5), dtype=np.uint8)
    grid[0, 2, 4] = 1
    grid[4, 2, 2] = 1
    moved = shift(grid, (1, -1, 0))
    assert moved[1, 1, 4] == 1 and moved.sum() == 1  # the voxel at H = 4 leaves the grid instead of wrapping
    np.testing.assert_array_equal(shift(grid, (0, 0, 0)), grid)
    assert shift(grid, (9, 0, 0)).sum() == 0


def test_augmentation_is_seeded_and_changes_grids() -> None:
    grids = np.stack([_grid(s) for s in range(4)])
    a = augment_batch(grids, np.random.default_rng(3))
    b = augment_batch(grids, np.random.default_rng(3))
    assert a.dtype == np.float32 and a.shape == grids.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, grids.astype(np.float32))
    same = augment_grid(grids[0], np.random.default_rng(0), rotations=1, flip_prob=0.0, max_shift=0)
    np.testing.assert_array_equal(same, grids[0])


def _linear_model(seed: int = 0, n_classes: int = 4):
    """A fixed softmax over random linear features: any orientation dependence shows in its output."""
    weights = np.random.default_rng(seed).normal(size=(12 * 12 * 12, n_classes))

    def predict(batch: np.ndarray) -> np.ndarray:
        logits = batch.reshape(len(batch), -1) @ weights
        logits -= logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    return predict


@pytest.mark.parametrize("rotations", [4, 12])
def test_vote_is_invariant_to_the_rotations_it_averages(rotations: int) -> None:
    predict = _linear_model()
    grids = np.stack([_grid(s) for s in range(3)])
    voted = vote(predict, grids, rotations)
    np.testing.assert_allclose(voted.sum(axis=1), 1.0, atol=1e-9)
    turned = vote(predict, np.rot90(grids, 1, axes=(1, 2)), rotations)
    np.testing.assert_allclose(turned, voted, atol=1e-12)
    single = predict(grids.astype(np.float32))
    assert not np.allclose(single, predict(np.rot90(grids, 1, axes=(1, 2)).astype(np.float32)))  # the model cares


def test_vote_with_thirty_degree_steps_is_close_to_invariant_for_any_multiple_of_thirty() -> None:
    """A smooth, orientation-sensitive model: single predictions move a lot, the 12-rotation vote hardly."""
    size = 16
    field = ndimage.gaussian_filter(np.random.default_rng(1).normal(size=(size, size, size, 4)), (3, 3, 3, 0))
    field /= np.abs(field).max()

    def predict(batch: np.ndarray) -> np.ndarray:
        logits = np.einsum("nhwz,hwzc->nc", batch, field) / 20.0
        logits -= logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    grid = np.zeros((size, size, size), dtype=np.uint8)
    grid[3:12, 5:9, 2:13] = 1
    base = vote(predict, grid[None], 12)
    for angle in (30, 60, 150):
        rotated = rotate_vertical(grid, angle)[None]
        assert np.abs(predict(rotated.astype(np.float32)) - predict(grid[None].astype(np.float32))).max() > 0.1
        np.testing.assert_allclose(vote(predict, rotated, 12), base, atol=0.02)


def test_fast_rotation_turns_the_same_way_as_the_interpolating_one() -> None:
    from voxelstudio.ml.voxel_augment import rotate_vertical_fast

    bar = np.zeros((32, 32, 4), np.uint8)
    bar[16:30, 14:18, :] = 1
    for angle in (0, 30, 60, 90, 150, 240):
        np.testing.assert_array_equal(rotate_vertical_fast(bar, angle), rotate_vertical(bar, angle))
    grid = _grid(1)
    for quarter in range(4):
        np.testing.assert_array_equal(rotate_vertical_fast(grid, 90 * quarter), np.rot90(grid, quarter, axes=(0, 1)))


def _grids_batch(key: int) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([_grid(key), _grid(key + 1)]), np.array([0, 1])


def test_augmented_batches_pose_then_augment_each_key_the_same_way() -> None:
    settings = {"rotations": 1, "flip_prob": 0.5, "max_shift": 2, "flip_axes": (0, 1, 2)}
    batches = AugmentedBatches(_grids_batch, seed=1, pose_version=3, settings=settings)
    x, labels = batches(4)
    again, _ = batches(4)
    np.testing.assert_array_equal(x, again)
    assert x.dtype == np.float32 and x.shape == (2, 12, 12, 12) and labels.tolist() == [0, 1]
    rng = np.random.default_rng([1, AUGMENT_STREAM, 4])
    np.testing.assert_array_equal(x, augment_batch(to_principal_pose(_grids_batch(4)[0], 3), rng, **settings))
    assert not np.array_equal(batches(5)[0], x)
    plain, _ = AugmentedBatches(_grids_batch)(4)  # no pose, no augmentation
    np.testing.assert_array_equal(plain, _grids_batch(4)[0].astype(np.float32))
