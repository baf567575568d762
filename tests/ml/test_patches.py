"""Lazy, bead-biased, augmented patch sampling."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.ml.patches import PatchSampler, augment_pair, bead_indices, clip_patch_shape


def labelled_pair(shape, bead_at=None):
    """raw = the voxel's flat index (so a patch tells where it came from); target has one bead voxel."""
    raw = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    target = np.zeros(shape, dtype=np.float32)
    if bead_at is not None:
        target[bead_at] = 1.0
    return raw, target


def test_clip_patch_shape_to_smallest_volume():
    assert clip_patch_shape((64, 64, 32), [(100, 50, 40), (80, 80, 16)]) == (64, 50, 16)
    assert clip_patch_shape((64, 64, 32), [(100, 50, 15)], multiple=(4, 4, 2)) == (64, 48, 14)
    with pytest.raises(ValueError, match=r"smallest training volume is 3 voxel\(s\) along y; the network needs .* 4"):
        clip_patch_shape((8, 8, 8), [(3, 8, 8)], multiple=(4, 4, 4))
    with pytest.raises(ValueError):
        clip_patch_shape((8, 8, 8), [])


def test_bead_indices_are_compact_and_thresholded():
    target = np.zeros((10, 10, 4), dtype=np.float32)
    target[2, 3, 1] = 0.5
    target[7, 7, 3] = 0.05
    indices = bead_indices(target, 0.1)
    assert indices.dtype == np.int32
    assert [np.unravel_index(i, target.shape) for i in indices] == [(2, 3, 1)]


def test_patches_have_one_shape_and_come_from_the_volumes():
    pairs = [labelled_pair((20, 24, 6)), labelled_pair((30, 12, 10))]
    sampler = PatchSampler(pairs, (16, 16, 8), bead_bias=0.0, augment=False)
    assert sampler.patch_shape == (16, 12, 6)
    x, y = sampler.batch(5, np.random.default_rng(0))
    assert x.shape == y.shape == (5, 16, 12, 6) and x.dtype == np.float32
    for patch in x:
        origin = int(patch[0, 0, 0])
        found = False
        for raw, _ in pairs:
            if origin < raw.size:
                y0, x0, z0 = np.unravel_index(origin, raw.shape)
                window = raw[y0 : y0 + 16, x0 : x0 + 12, z0 : z0 + 6]
                found = found or (window.shape == patch.shape and np.array_equal(window, patch))
        assert found


def test_bead_bias_centres_patches_on_beads():
    shape = (64, 64, 16)
    raw, target = labelled_pair(shape, bead_at=(40, 20, 9))
    biased = PatchSampler([(raw, target)], (8, 8, 4), bead_bias=1.0, augment=False)
    rng = np.random.default_rng(1)
    for _ in range(10):
        _, t = biased.sample(rng)
        assert t[4, 4, 2] == 1.0  # the bead sits at the patch centre
    unbiased = PatchSampler([(raw, target)], (8, 8, 4), bead_bias=0.0, augment=False)
    hits = sum(unbiased.sample(rng)[1].max() > 0 for _ in range(50))
    assert hits < 10


def test_volume_without_beads_falls_back_to_uniform():
    sampler = PatchSampler([labelled_pair((16, 16, 8))], (8, 8, 8), bead_bias=1.0)
    x, y = sampler.batch(3, np.random.default_rng(0))
    assert x.shape == (3, 8, 8, 8) and not y.any()
    rng = np.random.default_rng(1)
    corners = {sampler.corner(0, rng) for _ in range(200)}  # lower corners (y, x, z) in [0, 8] x [0, 8] x [0, 0]
    assert len(corners) > 40 and {(0, 0, 0), (8, 8, 0)} <= corners
    assert all(0 <= y <= 8 and 0 <= x <= 8 and z == 0 for y, x, z in corners)


def test_augmentation_moves_raw_and_target_together():
    rng = np.random.default_rng(2)
    raw = rng.random((8, 8, 4)).astype(np.float32)
    target = raw * 2 + 1
    variants = set()
    for _ in range(40):
        a, b = augment_pair(raw, target, rng)
        np.testing.assert_array_equal(b, a * 2 + 1)
        assert sorted(a.ravel()) == sorted(raw.ravel())
        variants.add(a.tobytes())
    assert len(variants) > 8  # flips and rotations both happen


def test_non_square_patches_keep_their_shape_under_augmentation():
    sampler = PatchSampler([labelled_pair((20, 12, 6))], (10, 6, 4), augment=True)
    rng = np.random.default_rng(3)
    assert {sampler.sample(rng)[0].shape for _ in range(20)} == {(10, 6, 4)}


def test_sampling_is_seeded_and_does_not_alter_inputs():
    pair = labelled_pair((24, 24, 8), bead_at=(5, 5, 5))
    before = pair[0].copy()
    sampler = PatchSampler([pair], (8, 8, 8))
    a = sampler.batch(4, np.random.default_rng(7))
    b = sampler.batch(4, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(pair[0], before)


def test_mismatched_pair_is_rejected():
    with pytest.raises(ValueError, match="pair 0"):
        PatchSampler([(np.zeros((8, 8, 8)), np.zeros((8, 8, 4)))], (4, 4, 4))
