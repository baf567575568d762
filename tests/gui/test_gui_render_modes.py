"""Render modes per panel: a panel's title-bar box changes that panel only; the View tab's mode sets all panels.
Training previews go into the existing actors and are drawn as drafts until training ends."""

from __future__ import annotations

import numpy as np
import pytest

from tests.gui.conftest import foreground_pixels, panel_image
from voxelstudio.render import RENDER_MODES

pytestmark = pytest.mark.gui


def _choose(box, mode: str) -> None:
    """Pick ``mode`` in a combo box as a user does (``activated`` fires)."""
    index = box.findData(mode)
    box.setCurrentIndex(index)
    box.activated.emit(index)


def test_one_panel_in_isosurface_mode_while_the_others_stay_mip(sample_session):
    document, view, viewports = sample_session.document, sample_session.view, sample_session.window.viewports
    target = document.volume("target")
    document.set_volume("prediction", target.replace(data=target.data.copy(), name="copy of target"))
    viewports.flush()
    target_actor = viewports.panels["target"].plotter.actors["volume"]

    _choose(viewports.panels["prediction"].mode_box, "isosurface")
    viewports.flush()

    assert view.mode_for("prediction") == "isosurface"
    assert view.mode_for("raw") == view.mode_for("target") == "mip"
    prediction_actors = viewports.panels["prediction"].plotter.actors
    assert "isosurface" in prediction_actors and "volume" not in prediction_actors
    assert viewports.panels["target"].plotter.actors["volume"] is target_actor  # the other panels were not rebuilt
    iso, mip = panel_image(sample_session, "prediction"), panel_image(sample_session, "target")
    assert foreground_pixels(iso) > 1000 and foreground_pixels(mip) > 1000
    assert np.abs(iso - mip).sum(-1).astype(bool).mean() > 0.02  # same data, same camera, different picture


def test_global_mode_sets_every_panel_and_the_title_boxes_follow(sample_session):
    view, window = sample_session.view, sample_session.window
    panels = window.viewports.panels
    _choose(panels["raw"].mode_box, "slices")
    assert view.panel_modes == {"raw": "slices"}
    _choose(window.view_panel.mode, "composite")
    assert view.panel_modes == {}
    assert all(view.mode_for(role) == "composite" for role in panels)
    assert all(panel.mode_box.currentData() == "composite" for panel in panels.values())
    _choose(window.view_panel.mode, "composite")  # choosing the shown global mode again also clears overrides
    _choose(panels["target"].mode_box, "mip")
    assert view.mode_for("target") == "mip" and window.view_panel.opacity_start.isEnabled()
    with pytest.raises(ValueError, match="render mode"):
        view.set_panel_mode("raw", "hologram")
    assert [panels["raw"].mode_box.itemData(i) for i in range(panels["raw"].mode_box.count())] == list(RENDER_MODES)


def test_slice_mode_panel_follows_the_cursor_without_new_actors(sample_session):
    view, viewports = sample_session.view, sample_session.window.viewports
    view.set_panel_mode("raw", "slices")
    viewports.flush()
    actors = dict(viewports.panels["raw"].plotter.actors)
    before = panel_image(sample_session, "raw")
    view.set_cursor((20, 100, 5))
    viewports.flush()
    assert viewports.panels["raw"].plotter.actors == actors
    assert viewports.panels["raw"].style.slice_index == (20, 100, 5)
    assert np.abs(panel_image(sample_session, "raw") - before).sum(-1).astype(bool).mean() > 0.01


def test_training_previews_reuse_the_volume_actor_as_drafts(sample_session):
    document, viewports = sample_session.document, sample_session.window.viewports
    raw, target = document.volume("raw"), document.volume("target")
    panel = viewports.panels["prediction"]
    for epoch in (1, 2):
        data = (target.data * (0.4 + 0.3 * epoch)).astype(np.float32)
        document.set_volume("prediction", raw.replace(data=data, name=f"preview {epoch}", metadata={"preview": epoch}))
        viewports.flush()
        if epoch == 1:
            actor = panel.plotter.actors["volume"]
    assert panel.plotter.actors["volume"] is actor
    assert panel.style.draft and viewports.is_draft("prediction") and not viewports.is_draft("target")
    shown = panel.plotter.actors["volume"].mapper.GetInput()
    assert np.shares_memory(np.asarray(shown.GetPointData().GetArray("intensity")), panel.image()["intensity"])
    document.set_model_path("trained.keras")  # training ended: the last preview is drawn at full quality
    viewports.flush()
    assert not panel.style.draft and panel.plotter.actors["volume"] is actor


def test_the_residual_mip_shows_positive_and_negative_errors_apart_on_a_clear_background(sample_session):
    document, view, window = sample_session.document, sample_session.view, sample_session.window
    target = document.volume("target")
    height, width, depth = target.shape
    y, x, z = np.meshgrid(np.arange(height), np.arange(width), np.arange(depth), indexing="ij")
    scale = float(np.percentile(target.data, 99.9))

    def blob(cy: float, cx: float) -> np.ndarray:
        return np.exp(-((y - cy) ** 2 + (x - cx) ** 2 + (z - depth / 2) ** 2) / 20.0)

    noise = 0.02 * scale * np.random.default_rng(0).standard_normal(target.shape)
    error = (noise + scale * (blob(height * 0.3, width * 0.5) - blob(height * 0.7, width * 0.5))).astype(np.float32)
    document.set_volume("prediction", target.replace(data=target.data + error, name="target with errors"))
    view.update(extra_panel="residual", mode="mip")
    view.set_camera(None)
    window.viewports.reset_camera()
    extra = window.viewports.panels["extra"]
    rgb = panel_image(sample_session, "extra")
    assert extra.style.signed and {"volume", "volume-min"} <= set(extra.plotter.actors)
    shown = foreground_pixels(rgb)
    red = (rgb[..., 0] > rgb[..., 2] + 60).sum()
    blue = (rgb[..., 2] > rgb[..., 0] + 60).sum()
    assert shown < 0.15 * rgb.shape[0] * rgb.shape[1]  # the noise about 0 is transparent, not a pale box
    assert red > 30 and blue > 30
