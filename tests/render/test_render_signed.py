"""Signed data (a residual) in MIP and composite mode: 0 is transparent, both signs show, in their own colours."""

from __future__ import annotations

import numpy as np
import pytest
import pyvista as pv

from voxelstudio.render import SceneStyle, draw_scene, reset_view, symmetric_clim, to_image_data, update_scene

pytestmark = pytest.mark.gui


def _residual() -> np.ndarray:
    """Noise about 0 everywhere, one positive and one negative error blob: (H, W, Z)."""
    y, x, z = np.meshgrid(np.arange(48), np.arange(48), np.arange(16), indexing="ij")

    def blob(cy: float, cx: float) -> np.ndarray:
        return np.exp(-((y - cy) ** 2 + (x - cx) ** 2 + (z - 8.0) ** 2) / 6.0)

    noise = 0.02 * np.random.default_rng(0).standard_normal(y.shape)
    return (noise + blob(16, 16) - blob(32, 32)).astype(np.float32)


def _style(mode: str) -> SceneStyle:
    return SceneStyle(mode=mode, cmap="RdBu_r", clim=symmetric_clim(_residual()), signed=True, show_scale_bar=False)


@pytest.fixture
def plotter():
    pl = pv.Plotter(off_screen=True, window_size=(200, 200))
    yield pl
    pl.close()


def test_signed_mip_takes_the_maximum_above_zero_and_the_minimum_below(plotter):
    style = _style("mip")
    draw_scene(plotter, to_image_data(_residual()), style)
    low, high = style.clim
    for name, blend, opaque_end in (("volume", "maximum", high), ("volume-min", "minimum", low)):
        actor = plotter.actors[name]
        assert actor.mapper.blend_mode == blend
        opacity = actor.GetProperty().GetScalarOpacity(0)
        assert opacity.GetValue(0.0) == 0.0 and opacity.GetValue(opaque_end) > 0.8
        assert opacity.GetValue(-opaque_end) == 0.0  # the other sign is the other actor's
        colors = actor.GetProperty().GetRGBTransferFunction(0)
        assert colors.GetRange() == pytest.approx(style.clim)


@pytest.mark.parametrize("mode", ["mip", "composite"])
def test_a_signed_residual_shows_both_blobs_on_a_clear_background(plotter, mode):
    image = to_image_data(_residual())
    draw_scene(plotter, image, _style(mode))
    reset_view(plotter, image, azimuth=0.0, elevation=0.0)
    rgb = plotter.screenshot(return_img=True).astype(int)
    background = rgb[0, 0]
    shown = np.abs(rgb - background).sum(-1) > 60
    red = (rgb[..., 0] > rgb[..., 2] + 60) & shown
    blue = (rgb[..., 2] > rgb[..., 0] + 60) & shown
    # the noise about 0 stays transparent (unsigned MIP drew it as a uniform pale box over 60 % of the image)
    assert shown.mean() < 0.1
    assert red.sum() > 50 and blue.sum() > 50  # the positive error in red, the negative one in blue
    rows_red, rows_blue = np.nonzero(red)[0].mean(), np.nonzero(blue)[0].mean()
    assert rows_red < rows_blue  # each where its blob is: positive at y = 16 (higher up), negative at y = 32


def test_a_signed_mip_takes_new_data_in_both_volumes(plotter):
    style = _style("mip")
    draw_scene(plotter, to_image_data(_residual()), style)
    before = dict(plotter.actors)
    new = to_image_data(-_residual())
    assert update_scene(plotter, new, style)
    assert plotter.actors == before
    for name in ("volume", "volume-min"):
        assert np.shares_memory(pv.wrap(plotter.actors[name].mapper.GetInput())["intensity"], new["intensity"])


def test_a_signed_isosurface_has_a_surface_at_each_sign(plotter):
    """A residual's isosurface at the middle of its symmetric limits would be at 0, i.e. around the noise: signed
    data gets a red surface at +level and a blue one at -level, level a fraction of the largest error."""
    style = _style("isosurface")
    residual = _residual()
    draw_scene(plotter, to_image_data(residual), style)
    level = style.iso_level
    assert level == pytest.approx(0.5 * style.clim[1]) and level > 0.3
    for name, sign in (("isosurface", 1.0), ("isosurface-min", -1.0)):
        surface = pv.wrap(plotter.actors[name].mapper.GetInput())
        values = surface["intensity"]
        assert np.allclose(values, sign * level, atol=1e-4)
        centre = np.asarray(surface.center)  # VTK (x, y, z): the positive blob at y = 16, the negative one at 32
        assert centre[1] == pytest.approx(16.0 if sign > 0 else 32.0, abs=1.0)
    colors = {name: plotter.actors[name].GetProperty().GetColor() for name in ("isosurface", "isosurface-min")}
    assert (
        colors["isosurface"][0] > colors["isosurface"][2] and colors["isosurface-min"][2] > colors["isosurface-min"][0]
    )
    assert update_scene(plotter, to_image_data(-residual), style)  # new data: both surfaces swap sides
    flipped = np.asarray(pv.wrap(plotter.actors["isosurface"].mapper.GetInput()).center)
    assert flipped[1] == pytest.approx(32.0, abs=1.0)
