"""tasks.volume_grid: any volume fitted into a classifier's grid without distortion, and maps sampled back."""

from __future__ import annotations

import numpy as np

from voxelstudio.core.volume import Volume
from voxelstudio.tasks.volume_grid import place_volume


def test_a_grid_of_the_model_size_is_kept_as_it_is() -> None:
    data = np.zeros((16, 16, 16), np.uint8)
    data[3:9, 4:12, 5:7] = 255
    placed = place_volume(Volume(data), (16, 16, 16))
    np.testing.assert_array_equal(placed.grid, data // 255)
    assert placed.scale == (1.0, 1.0, 1.0) and placed.offset == (0.0, 0.0, 0.0)


def test_a_flat_intensity_volume_is_thresholded_shrunk_and_centred() -> None:
    data = np.full((64, 64, 16), 100.0, np.float32)  # background 100, a bright block, like the microscope sample
    data[8:24, 32:48, 4:12] = 230.0
    placed = place_volume(Volume(data), (16, 16, 16))
    assert placed.scale == (0.25, 0.25, 0.25) and placed.offset == (0.0, 0.0, 6.0)
    expected = np.zeros((16, 16, 16), np.uint8)
    expected[2:6, 8:12, 7:9] = 1  # the block at a quarter of its size, z shifted by the centring offset
    np.testing.assert_array_equal(placed.grid, expected)


def test_anisotropic_spacing_is_respected() -> None:
    data = np.ones((32, 32, 8), np.float32)
    data[0, 0, 0] = 0.0
    placed = place_volume(Volume(data, spacing=(1.0, 1.0, 4.0)), (16, 16, 16))  # a 32 um cube in physical units
    assert placed.scale == (0.5, 0.5, 2.0)
    assert placed.grid.sum() > 0.95 * 16**3  # fills the grid: not squashed to a slab


def test_maps_over_the_grid_come_back_at_the_volume_voxels() -> None:
    volume = Volume(np.zeros((64, 64, 16), np.float32))
    placed = place_volume(volume, (16, 16, 16))
    ramp = np.broadcast_to(np.arange(16, dtype=np.float32)[None, None, :], (16, 16, 16))  # grid z index
    back = placed.to_volume(ramp, volume.shape)
    assert back.shape == (64, 64, 16) and back.dtype == np.float32
    np.testing.assert_allclose(back[0, 0, :], 6.0 + (np.arange(16) + 0.5) * 0.25 - 0.5)


def test_objects_smaller_than_a_grid_voxel_survive_shrinking() -> None:
    data = np.full((64, 64, 16), 100.0, np.float32)
    data[43:45, 11:13, 3:5] = 230.0  # a 2-voxel bead between the points a plain resampling would sample
    grid = place_volume(Volume(data), (16, 16, 16)).grid
    assert 1 <= grid.sum() <= 8
    assert set(zip(*np.nonzero(grid), strict=True)) <= {(y, x, z) for y in (10, 11) for x in (2, 3) for z in (6, 7)}
