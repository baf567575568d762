"""Each render mode draws something visible, with the contrast limits we pass (not pyvista's own)."""

from __future__ import annotations

import numpy as np
import pytest
import pyvista as pv

from voxelstudio.render import RENDER_MODES, SceneStyle, draw_scene, reset_view, to_image_data

pytestmark = pytest.mark.gui


def _bead_volume() -> np.ndarray:
    z, y, x = np.meshgrid(np.arange(12), np.arange(24), np.arange(24), indexing="ij")
    blob = np.exp(-((y - 12.0) ** 2 + (x - 12.0) ** 2 + (z - 6.0) ** 2) / 8.0)
    return np.transpose(blob, (1, 2, 0)).astype(np.float32)  # (H, W, Z)


def _foreground_fraction(plotter) -> float:
    img = plotter.screenshot(return_img=True).astype(int)
    background = img[0, 0]
    return float(np.mean(np.abs(img - background).sum(-1) > 30))


@pytest.fixture
def plotter():
    pl = pv.Plotter(off_screen=True, window_size=(160, 160))
    yield pl
    pl.close()


@pytest.mark.parametrize("mode", RENDER_MODES)
def test_every_mode_renders_the_bead(plotter, mode):
    image = to_image_data(_bead_volume(), spacing=(0.1, 0.1, 0.2))
    draw_scene(plotter, image, SceneStyle(mode=mode, clim=(0.0, 1.0), slice_index=(12, 12, 6), show_scale_bar=False))
    reset_view(plotter, image)
    assert _foreground_fraction(plotter) > 0.01


def test_clim_is_applied_explicitly(plotter):
    image = to_image_data(_bead_volume() * 100.0)
    draw_scene(plotter, image, SceneStyle(clim=(0.0, 400.0)))
    volume_actor = plotter.actors["volume"]
    assert tuple(volume_actor.mapper.scalar_range) == (0.0, 400.0)


def test_contrast_above_the_data_hides_it(plotter):
    image = to_image_data(_bead_volume())
    draw_scene(plotter, image, SceneStyle(mode="isosurface", clim=(10.0, 20.0), show_scale_bar=False))
    reset_view(plotter, image)
    assert "isosurface" not in plotter.actors


def test_style_validation():
    with pytest.raises(ValueError, match="render mode"):
        SceneStyle(mode="hologram")
    with pytest.raises(ValueError, match="increase"):
        SceneStyle(clim=(1.0, 1.0))
    assert SceneStyle(clim=(0.0, 2.0), iso_fraction=0.25).iso_level == 0.5


def test_slice_planes_of_a_reduced_image_go_through_the_full_resolution_voxel(plotter):
    from voxelstudio.render import display_image
    from voxelstudio.render.scene import _slice_planes

    data = np.repeat(np.repeat(_bead_volume(), 4, axis=0), 4, axis=1)  # 96 x 96 x 12
    image = display_image(data, spacing=(0.1, 0.1, 0.2), max_voxels=data.size // 10)
    planes = dict(_slice_planes(image, SceneStyle(mode="slices", clim=(0.0, 1.0), slice_index=(40, 70, 6))))
    assert planes[0].bounds[0] == pytest.approx(70 * 0.1)  # x-normal plane at x = 7.0 um
    assert planes[1].bounds[2] == pytest.approx(40 * 0.1)  # y-normal plane at y = 4.0 um
    assert planes[2].bounds[4] == pytest.approx(6 * 0.2)
    for edge in ((0, 95, 11), (95, 0, 0)):  # the first and last planes lie just outside the blocks
        edges = dict(_slice_planes(image, SceneStyle(mode="slices", clim=(0.0, 1.0), slice_index=edge)))
        assert all(plane.n_points for plane in edges.values()), edge
    assert edges[0].bounds[0] == pytest.approx(image.bounds[0], abs=1e-3)  # drawn at the reduced image's edge


def test_the_first_and_last_planes_of_a_full_resolution_image_are_drawn(plotter):
    from voxelstudio.render import display_image
    from voxelstudio.render.scene import _slice_planes

    image = display_image(_bead_volume(), spacing=(0.1, 0.1, 0.2))
    last = tuple(n - 1 for n in _bead_volume().shape)
    for corner in ((0, 0, 0), last):
        planes = dict(_slice_planes(image, SceneStyle(mode="slices", clim=(0.0, 1.0), slice_index=corner)))
        assert all(plane.n_points for plane in planes.values()), corner
