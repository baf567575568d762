"""Sub-voxel translation: moves smooth content by the fraction asked, keeps noise's variance, and is local enough
that a block moved with its halo equals the same voxels of the whole volume moved."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.core.subvoxel import HALO, lanczos_kernel, reach, translate


def _bead(shape: tuple[int, int, int], centre: tuple[float, float, float], sigma: float = 1.0) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float64)
    return np.exp(-sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) / (2 * sigma**2))


def _centroid(volume: np.ndarray) -> np.ndarray:
    grid = np.indices(volume.shape, dtype=np.float64).reshape(3, -1)
    return (grid * volume.ravel()).sum(axis=1) / volume.sum()


def test_the_kernel_interpolates_a_smooth_function_at_the_shifted_position() -> None:
    x = np.arange(-HALO, HALO + 1, dtype=np.float64)
    for shift in (-0.6, -0.25, 0.0, 0.3, 0.75):
        weights = lanczos_kernel(shift)
        assert weights.sum() == pytest.approx(1.0)
        assert float(weights @ np.cos(0.4 * (10 + x))) == pytest.approx(np.cos(0.4 * (10 + shift)), abs=5e-3)
    assert lanczos_kernel(0.0) == pytest.approx(np.eye(2 * HALO + 1)[HALO])
    with pytest.raises(ValueError, match=r"\(-1, 1\)"):
        lanczos_kernel(1.0)


@pytest.mark.parametrize("by", [(0.0, 0.0, 0.6), (0.0, 0.0, -0.62), (0.3, -0.4, 1.7)])
def test_a_bead_moves_by_the_shift_and_keeps_its_shape(by: tuple[float, float, float]) -> None:
    centre = np.array([11.3, 12.0, 10.8])
    bead = _bead((24, 24, 24), tuple(centre), sigma=1.2)
    moved = translate(bead, by)
    assert moved.dtype == np.float32
    assert _centroid(moved) - _centroid(bead) == pytest.approx(by, abs=0.02)  # the window errs by up to 0.015
    assert moved.sum() == pytest.approx(bead.sum(), rel=1e-3)
    assert np.abs(moved - _bead((24, 24, 24), tuple(centre + by), sigma=1.2)).max() < 0.01  # the bead, not blurred


def test_whole_voxels_move_by_indexing_with_mirrored_faces() -> None:
    volume = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    moved = translate(volume, (0, 2, -1))
    assert np.array_equal(moved[:, 2:, :-1], volume[:, :-2, 1:])
    assert np.array_equal(moved[:, :2, :], volume[:, 1::-1, :][:, :, [1, 2, 3, 4, 5, 6, 6]])
    assert translate(volume, (0, 0, 0)) is not None and np.array_equal(translate(volume, (0, 0, 0)), volume)


def test_noise_keeps_most_of_its_variance() -> None:
    noise = np.random.default_rng(1).normal(size=(32, 32, 64))
    moved = translate(noise, (0.0, 0.0, 0.5))  # half a voxel: the hardest case; linear interpolation keeps 0.5
    assert 0.78 < moved[:, :, HALO:-HALO].var() < 0.86


def test_a_block_moved_with_its_reach_equals_the_whole_volume_moved() -> None:
    volume = np.random.default_rng(2).random((20, 22, 40)).astype(np.float32)
    by = (0.0, -0.35, 0.62)
    assert reach(by) == (0, HALO + 1, HALO + 1)
    whole = translate(volume, by)
    for lo, hi in ((0, 9), (9, 25), (25, 40)):  # a block at each face and one inside
        a, b = max(0, lo - reach(by)[2]), min(40, hi + reach(by)[2])
        block = translate(volume[:, :, a:b], by)[:, :, lo - a : hi - a]
        assert np.allclose(block, whole[:, :, lo:hi], atol=1e-6)


def test_one_shift_per_axis_is_required() -> None:
    with pytest.raises(ValueError, match="one shift per axis"):
        translate(np.zeros((4, 4, 4)), (0.5, 0.5))
