"""Axis conventions: (H, W, Z) = (y, x, z) arrays to VTK points and to 2-D slice planes."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.render import (
    SCALARS,
    centre_index,
    clamp_index,
    nice_length,
    orthogonal_slices,
    plane_extents,
    to_image_data,
    voxel_at,
    vtk_spacing,
    world_point,
)


def _ramp(shape=(5, 4, 3)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_image_data_maps_yxz_to_vtk_xyz():
    data = _ramp()
    image = to_image_data(data, spacing=(0.2, 0.1, 0.5))
    assert image.dimensions == (4, 5, 3)  # (W, H, Z)
    assert image.spacing == pytest.approx((0.1, 0.2, 0.5))
    values = image.point_data[SCALARS]
    for y, x, z in [(0, 0, 0), (4, 3, 2), (1, 2, 0), (3, 0, 1)]:
        point_id = image.find_closest_point(world_point((y, x, z), (0.2, 0.1, 0.5)))
        assert values[point_id] == data[y, x, z]
        assert image.points[point_id] == pytest.approx((x * 0.1, y * 0.2, z * 0.5))


def test_vtk_spacing_swaps_y_and_x():
    assert vtk_spacing((0.2, 0.1, 0.5)) == (0.1, 0.2, 0.5)


def test_image_data_rejects_2d():
    with pytest.raises(ValueError, match="3-D"):
        to_image_data(np.zeros((4, 4), np.float32))


@pytest.mark.parametrize(("span", "expected"), [(12.8, 2.0), (100.0, 20.0), (3.0, 0.5), (51.0, 10.0), (0.9, 0.1)])
def test_nice_length_is_round_and_about_a_fifth(span, expected):
    assert nice_length(span) == pytest.approx(expected)


def test_orthogonal_slices_orientation():
    data = _ramp()
    planes = orthogonal_slices(data, (1, 2, 0))
    np.testing.assert_array_equal(planes.xy, data[:, :, 0])  # (H, W)
    assert planes.xz.shape == (3, 4)  # rows z, columns x
    assert planes.xz[2, 3] == data[1, 3, 2]
    assert planes.yz.shape == (5, 3)  # rows y, columns z
    assert planes.yz[4, 1] == data[4, 2, 1]


def test_slices_clamp_out_of_range_index():
    data = _ramp()
    assert clamp_index((-3, 10, 7), data.shape) == (0, 3, 2)
    planes = orthogonal_slices(data, (99, 99, 99))
    np.testing.assert_array_equal(planes.xy, data[:, :, 2])
    assert centre_index(data.shape) == (2, 2, 1)


def test_plane_extents_and_voxel_lookup_round_trip():
    shape, spacing = (5, 4, 3), (0.2, 0.1, 0.5)
    extents = plane_extents(shape, spacing)
    assert extents["xy"] == pytest.approx((-0.05, 0.35, 0.9, -0.1))
    assert extents["xz"] == pytest.approx((-0.05, 0.35, 1.25, -0.25))
    assert extents["yz"] == pytest.approx((-0.25, 1.25, 0.9, -0.1))
    assert voxel_at("xy", 0.3, 0.8, (0, 0, 2), spacing) == (4, 3, 2)
    assert voxel_at("xz", 0.1, 1.0, (3, 0, 0), spacing) == (3, 1, 2)
    assert voxel_at("yz", 0.5, 0.4, (0, 1, 0), spacing) == (2, 1, 1)
    with pytest.raises(ValueError, match="unknown plane"):
        voxel_at("zz", 0, 0, (0, 0, 0), spacing)


def test_display_factors_reduce_width_and_height_before_depth():
    from voxelstudio.render import display_factors

    assert display_factors((256, 256, 32), max_voxels=1 << 25) == (1, 1, 1)
    assert display_factors((1024, 1024, 128), max_voxels=1 << 25) == (2, 2, 1)
    assert display_factors((64, 64, 4096), max_voxels=1 << 20) == (4, 4, 1)  # 16 x 16 x 4096: exactly 1 Mi
    assert display_factors((8, 8, 1 << 21), max_voxels=1 << 20) == (4, 4, 8)  # 2 x 2 laterally, then z


def test_display_image_keeps_bright_voxels_and_physical_positions():
    from voxelstudio.render import display_image
    from voxelstudio.render.grid import SOURCE_SPACING

    data = np.zeros((40, 30, 8), np.float32)
    data[21, 13, 5] = 7.0  # one bright voxel: a block maximum keeps it
    spacing = (0.1, 0.2, 0.5)
    full = display_image(data, spacing, max_voxels=data.size)
    assert full.dimensions == (30, 40, 8) and SOURCE_SPACING not in full.field_data
    reduced = display_image(data, spacing, max_voxels=data.size // 4)
    assert reduced.dimensions == (15, 20, 8)
    assert reduced.spacing == pytest.approx((0.4, 0.2, 0.5)) and reduced.origin == pytest.approx((0.1, 0.05, 0.0))
    np.testing.assert_allclose(reduced.field_data[SOURCE_SPACING], (0.2, 0.1, 0.5))
    brightest = reduced.points[int(np.argmax(reduced.point_data["intensity"]))]
    assert reduced.point_data["intensity"].max() == 7.0
    offset = np.abs(brightest - np.array([13 * 0.2, 21 * 0.1, 5 * 0.5]))
    assert (offset <= 0.5 * np.array([0.4, 0.2, 0.5]) + 1e-6).all()  # within half a block of the bright voxel


def test_a_single_plane_is_drawn_as_a_slab_one_z_step_thick_around_it():
    from voxelstudio.render import display_image

    plane = _ramp((5, 4, 1))
    image = display_image(plane, (0.1, 0.2, 0.5))
    assert image.dimensions == (4, 5, 2)  # a grid one point deep encloses nothing for a ray to cross
    assert image.bounds[4:] == pytest.approx((-0.25, 0.25))
    np.testing.assert_array_equal(image.point_data[SCALARS].reshape(2, 5, 4), plane.transpose(2, 0, 1)[[0, 0]])


def test_a_reduced_signed_image_keeps_the_extreme_of_either_sign():
    from voxelstudio.render import display_image

    data = np.full((40, 30, 8), 0.1, np.float32)
    data[21, 13, 5] = -7.0  # a strong negative error: block maxima (0.1) would lose it
    data[2, 2, 2] = 3.0
    reduced = display_image(data, (0.1, 0.2, 0.5), max_voxels=data.size // 4, signed=True)
    values = reduced.point_data["intensity"]
    assert values.min() == -7.0 and values.max() == 3.0
    assert (values == 0.1).sum() == values.size - 2  # other blocks: their largest magnitude, here 0.1
    unsigned = display_image(data, (0.1, 0.2, 0.5), max_voxels=data.size // 4)
    assert unsigned.point_data["intensity"].min() == 0.1


def test_an_index_keeps_its_place_in_the_sample_across_resolution_levels():
    from voxelstudio.render.slices import rescale_index

    assert rescale_index((128, 128, 16), (256, 256, 32), (1024, 1024, 128)) == (513, 513, 65)  # a block's middle
    assert rescale_index((513, 515, 65), (1024, 1024, 128), (256, 256, 32)) == (128, 128, 16)  # the block holding it
    assert rescale_index((149, 0, 2), (150, 130, 3), (300, 260, 3)) == (298, 0, 2)  # odd sizes, z not reduced
    assert rescale_index((299, 259, 2), (300, 260, 3), (150, 130, 3)) == (149, 129, 2)


def test_level_factors_of_a_pyramid_are_its_powers_of_two_even_where_an_axis_is_short():
    """A 3000x100 image halved 4 times is 188x7: 100 -> 7 is a factor of 16, which rounding the ratio read as 14."""
    from voxelstudio.render.slices import level_factor, rescale_index

    pairs = ((188, 3000), (7, 100), (50, 50), (130, 259), (64, 129))
    assert [level_factor(coarse, fine) for coarse, fine in pairs] == [16, 16, 1, 2, 2]
    assert level_factor(10, 30) == 3  # no power of two gives it: the nearest whole ratio
    assert rescale_index((0, 5, 0), (188, 7, 50), (3000, 100, 50))[1] == 87  # the middle of x 80..95 (14: 77)
