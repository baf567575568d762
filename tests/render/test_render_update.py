"""New data of the same geometry goes into the existing actors; the slice views fill their area at true aspect."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import pyvista as pv

from voxelstudio.render import SceneStyle, can_update, draw_scene, slice_layout, to_image_data, update_scene


def _blob(centre_x: float) -> np.ndarray:
    y, x, z = np.meshgrid(np.arange(24), np.arange(24), np.arange(12), indexing="ij")
    return np.exp(-((y - 12.0) ** 2 + (x - centre_x) ** 2 + (z - 6.0) ** 2) / 8.0).astype(np.float32)


@pytest.fixture
def plotter():
    pl = pv.Plotter(off_screen=True, window_size=(120, 120))
    yield pl
    pl.close()


@pytest.mark.gui
@pytest.mark.parametrize("mode", ["mip", "composite", "isosurface", "slices"])
def test_update_scene_reuses_actors_and_shows_the_new_data(plotter, mode):
    style = SceneStyle(mode=mode, clim=(0.0, 1.0), slice_index=(12, 12, 6), show_scale_bar=False)
    draw_scene(plotter, to_image_data(_blob(8.0)), style)
    before = dict(plotter.actors)
    moved = to_image_data(_blob(16.0))
    assert update_scene(plotter, moved, style)
    assert plotter.actors == before  # the same actor objects, nothing added or removed
    name = {"mip": "volume", "composite": "volume", "isosurface": "isosurface", "slices": "slice-2"}[mode]
    shown = pv.wrap(plotter.actors[name].mapper.GetInput())
    if mode in ("mip", "composite"):
        assert np.shares_memory(shown["intensity"], moved["intensity"])  # handed over, not copied
    elif mode == "isosurface":
        assert shown.center[0] == pytest.approx(16.0, abs=0.5)  # the surface moved with the blob
    else:
        z_plane = shown["intensity"].reshape(24, 24)  # the z = 6 plane, rows y, columns x
        assert np.unravel_index(np.argmax(z_plane), z_plane.shape) == (12, 16)


@pytest.mark.gui
def test_update_scene_refuses_a_scene_without_the_actor(plotter):
    style = SceneStyle(mode="isosurface", clim=(0.0, 1.0), show_scale_bar=False)
    draw_scene(plotter, to_image_data(_blob(8.0) * 0.1), style)  # below the iso level: no surface drawn
    assert "isosurface" not in plotter.actors
    assert not update_scene(plotter, to_image_data(_blob(8.0)), style)


@pytest.mark.gui
def test_draft_sampling_is_coarser_and_reversible(plotter):
    image = to_image_data(_blob(8.0), spacing=(0.1, 0.1, 0.1))
    style = SceneStyle(clim=(0.0, 1.0), show_scale_bar=False)
    draw_scene(plotter, image, dataclasses.replace(style, draft=True))
    mapper = plotter.actors["volume"].mapper
    assert mapper.GetImageSampleDistance() > 1.0 and mapper.GetSampleDistance() == pytest.approx(0.1)
    assert update_scene(plotter, image, style)
    assert mapper.GetImageSampleDistance() == 1.0 and mapper.GetSampleDistance() == pytest.approx(0.05)


def test_can_update_only_for_the_same_look():
    style = SceneStyle(mode="mip", clim=(0.0, 1.0))
    assert not can_update(None, style)
    assert can_update(style, dataclasses.replace(style, draft=True))
    assert not can_update(style, dataclasses.replace(style, clim=(0.0, 2.0)))
    assert not can_update(style, dataclasses.replace(style, mode="composite"))
    slices = dataclasses.replace(style, mode="slices", slice_index=(1, 2, 3))
    assert can_update(slices, dataclasses.replace(slices, slice_index=(4, 5, 6)))
    assert can_update(style, dataclasses.replace(style, slice_index=(4, 5, 6)))  # planes are redrawn, not the rest


@pytest.mark.parametrize(
    ("shape", "spacing", "size"),
    [
        ((128, 128, 32), (0.1, 0.1, 0.1), (350, 330)),
        ((128, 128, 32), (0.1, 0.1, 0.3), (350, 330)),
        ((128, 128, 32), (0.1, 0.1, 0.5), (300, 200)),
        ((64, 200, 16), (0.2, 0.1, 0.8), (500, 150)),
    ],
)
def test_slice_layout_fits_at_true_aspect(shape, spacing, size):
    rects = slice_layout(shape, spacing, size)
    (height, width, depth), (sy, sx, sz) = shape, spacing
    extents = {"xy": (width * sx, height * sy), "xz": (width * sx, depth * sz), "yz": (depth * sz, height * sy)}
    for plane, (left, bottom, w, h) in rects.items():
        assert left >= 0 and bottom >= 0 and left + w <= size[0] + 1e-6 and bottom + h <= size[1] + 1e-6, plane
        assert w / h == pytest.approx(extents[plane][0] / extents[plane][1]), plane
    xy, xz, yz = rects["xy"], rects["xz"], rects["yz"]
    assert xz[1] + xz[3] <= xy[1] and yz[0] >= xy[0] + xy[2]  # XZ below XY, YZ right of it, no overlap
    assert yz[3] == pytest.approx(xy[3])  # XY and YZ share the y scale


def test_slice_layout_gives_a_shallow_stack_a_wider_xz():
    shape, spacing, size = (128, 128, 32), (0.1, 0.1, 0.1), (350, 330)
    rects = slice_layout(shape, spacing, size)
    classic = min((350 - 4 - 4) / 16.0, (330 - 4 - 4) / 16.0)  # px per micrometre with XZ at the XY scale
    assert rects["xz"][2] >= 1.15 * classic * 12.8
    assert rects["xy"][2] >= 0.85 * classic * 12.8
