"""Colorbars, scale bars, the probe in µm, colormaps (per panel and linked) and undo/redo of view changes."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.gui.viewports import CAMERA_SETTLE_MS
from voxelstudio.render import nice_length

pytestmark = pytest.mark.gui


def _drawn(session):
    session.window.viewports.flush()
    session.window.slices.refresh()


def test_colorbar_follows_the_panels_contrast_and_colormap(sample_session):
    window, view = sample_session.window, sample_session.view
    view.update(cmap="green")
    view.set_clim("raw", (110.0, 180.0))
    _drawn(sample_session)
    bar = window.viewports.panels["raw"].colorbar
    assert (bar.cmap, bar.clim, bar.labels()) == ("green", (110.0, 180.0), ("110", "180"))
    # the slice views below and the 3-D view draw with the same colormap and limits
    xy = window.slices.panels["raw"]._images["xy"]
    assert xy.get_clim() == (110.0, 180.0) and xy.get_cmap().name == "green"
    volume_property = window.viewports.panels["raw"].plotter.actors["volume"].GetProperty()
    colors = volume_property.GetRGBTransferFunction(0)
    assert colors.GetRange() == pytest.approx((110.0, 180.0))
    assert colors.GetColor(180.0) == pytest.approx((0.0, 1.0, 0.0), abs=0.02)
    # and the bar itself is drawn black to green, left to right
    image = bar.grab().toImage()
    strip = bar.strip_rect()
    ratio = image.devicePixelRatio()
    middle = int(strip.center().y() * ratio)
    left, right = (
        image.pixelColor(int((strip.left() + 1) * ratio), middle),
        image.pixelColor(int((strip.right() - 1) * ratio), middle),
    )
    assert left.green() < 30 and right.green() > 220 and right.red() < 30 and right.blue() < 30


def test_colormaps_per_panel_and_linked_from_the_view_tab(sample_session):
    window, view = sample_session.window, sample_session.view
    settings, bars = window.view_panel, {r: p.colorbar for r, p in window.viewports.panels.items()}

    def choose(panel: str, cmap: str) -> None:
        settings.cmap_panel.setCurrentIndex(settings.cmap_panel.findData(panel))
        index = settings.cmap.findData(cmap)
        settings.cmap.setCurrentIndex(index)
        settings.cmap.activated.emit(index)

    choose("target", "magenta")
    settings.invert.click()
    _drawn(sample_session)
    assert view.panel_cmaps == {"target": "magenta_r"}
    assert (bars["raw"].cmap, bars["target"].cmap) == ("gray", "magenta_r")
    assert window.slices.panels["target"]._images["xz"].get_cmap().name == "magenta_r"

    choose("all", "fire")  # one setting for every panel: each panel's own choice goes
    _drawn(sample_session)
    assert view.panel_cmaps == {} and (view.cmap, view.invert) == ("fire", False)
    assert bars["raw"].cmap == bars["target"].cmap == "fire" and bars["prediction"].cmap is None  # no volume
    settings.invert.click()
    _drawn(sample_session)
    assert bars["raw"].cmap == bars["target"].cmap == "fire_r"


def test_scale_bar_length_matches_the_spacing(sample_session):
    window, document = sample_session.window, sample_session.document
    panel = window.slices.panels["raw"]
    for spacing in ((0.1, 0.1, 0.1), (0.25, 0.25, 0.5)):
        if document.spacing != spacing:
            document.set_spacing(spacing)
        window.slices.refresh(now=True)
        _height, width, _depth = document.volume("raw").shape
        expected = nice_length(width * spacing[1])
        assert panel.scale_bar_um == expected
        bar, label = panel._scale_bar_artists
        assert np.ptp(bar.get_xdata()) == pytest.approx(expected)
        assert label.get_text() == f"{expected:g} µm"
        # on screen: the bar takes the same share of the XY view's width as its length of the volume's width
        axes = panel._axes["xy"]
        (x0, _), (x1, _) = axes.transData.transform([(bar.get_xdata()[0], 0), (bar.get_xdata()[1], 0)])
        assert (x1 - x0) / axes.bbox.width == pytest.approx(expected / (width * spacing[1]), rel=0.01)
    sample_session.view.update(show_scale_bar=False)
    assert panel.scale_bar_um is None and not bar.get_visible()


def test_probe_shows_the_voxel_and_its_position_in_micrometres(sample_session):
    window, document = sample_session.window, sample_session.document
    document.set_spacing((0.2, 0.1, 0.5))
    window.slices.panels["raw"].hovered.emit((10, 20, 3))
    text = window.slices.probe.text()
    assert "voxel (y, x, z) = (10, 20, 3) = (2, 2, 1.5) µm" in text
    assert f"raw {float(document.volume('raw').data[10, 20, 3]):.4g}" in text


def test_undo_and_redo_restore_contrast_colormap_and_render_mode(sample_session):
    window, view = sample_session.window, sample_session.view
    undo, redo = window.action_map["undo"], window.action_map["redo"]
    assert undo.shortcut().toString() == "Ctrl+Z" and redo.shortcut().toString() == "Ctrl+Shift+Z"
    assert window.menus["Edit"].actions()[:2] == [undo, redo]
    bar = window.viewports.panels["raw"].colorbar
    _drawn(sample_session)
    auto = bar.clim
    view.set_clim("raw", (120.0, 200.0))
    view.update(cmap="cyan")
    view.update(mode="isosurface")
    assert undo.isEnabled() and not redo.isEnabled()

    undo.trigger()
    _drawn(sample_session)
    assert view.mode == "mip" and bar.cmap == "cyan" and redo.isEnabled()
    assert window.viewports.panels["raw"].style.mode == "mip"
    undo.trigger()
    _drawn(sample_session)
    assert bar.cmap == "gray" and bar.clim == (120.0, 200.0)
    assert window.view_panel.cmap.currentData() == "gray"  # the View tab shows the restored choice
    undo.trigger()
    _drawn(sample_session)
    assert bar.clim == auto

    for _ in range(3):
        redo.trigger()
    _drawn(sample_session)
    assert (view.mode, bar.cmap, bar.clim) == ("isosurface", "cyan", (120.0, 200.0))
    assert not redo.isEnabled()


def test_camera_moves_are_undone_and_a_new_volume_keeps_the_history_working(qtbot, sample_session):
    window, view, document = sample_session.window, sample_session.view, sample_session.document
    viewports = window.viewports
    _drawn(sample_session)
    before = viewports.camera_pose()
    viewports.camera.Azimuth(40)
    qtbot.waitUntil(lambda: view.camera is not None and view.camera != before, timeout=5_000)
    view.undo()
    assert viewports.camera_pose() == before
    qtbot.wait(CAMERA_SETTLE_MS + 300)  # the restored pose settles: it must not become a step that drops the redo
    x, y, z = viewports.camera.GetPosition()
    viewports.camera.SetPosition(x + 3e-6, y, z)  # VTK hands a set pose back with its last digits changed
    viewports._camera_came_to_rest()
    assert view.redo()
    assert viewports.camera_pose() != before

    view.set_clim("raw", (130.0, 150.0))
    view.update(cmap="magenta")
    raw = document.volume("raw")
    document.set_volume("raw", raw.replace(data=raw.data[:64], name="half"))  # new data, new bounds
    _drawn(sample_session)
    bar = viewports.panels["raw"].colorbar
    assert bar.clim != (130.0, 150.0) and bar.cmap == "magenta"
    assert view.undo()  # the new volume's camera and limits were no steps: this undoes the colormap
    _drawn(sample_session)
    assert bar.cmap == "gray" and bar.clim != (130.0, 150.0)  # limits set for the old data never come back


def test_a_screenshot_that_cannot_be_written_is_one_line_naming_the_file(sample_session, tmp_path):
    out = tmp_path / "missing" / "shot.png"
    assert not sample_session.commands.write_screenshot(out)
    assert not out.exists() and not list(tmp_path.iterdir())
    (_title, message, _details), *others = sample_session.dialogs.errors
    assert not others and str(out) in message and "does not exist" in message and "\n" not in message
    assert sample_session.commands.write_screenshot(tmp_path / "shot.png") and (tmp_path / "shot.png").stat().st_size


def test_a_new_voxel_size_keeps_the_contrast_set_by_hand_and_new_data_resets_it(sample_session):
    """Applying a voxel size replaces the volumes with the same data: the limits set by hand (and their undo
    history) stay; new data (another file, a new prediction) gets automatic limits again."""
    window, view, document = sample_session.window, sample_session.view, sample_session.document
    bar = window.viewports.panels["raw"].colorbar
    _drawn(sample_session)
    auto = bar.clim
    view.set_clim("raw", (115.0, 190.0))
    spacing = document.volume("raw").spacing
    sample_session.controller.set_spacing(tuple(2 * s for s in spacing))
    _drawn(sample_session)
    assert bar.clim == (115.0, 190.0) and window.action_map["undo"].isEnabled()
    document.set_volume("raw", document.volume("raw").replace(data=document.volume("raw").data.copy()))
    _drawn(sample_session)
    assert bar.clim == auto
    sample_session.controller.set_spacing(spacing)


def test_leaving_a_contrast_box_untouched_keeps_the_limits_automatic(sample_session):
    window, view = sample_session.window, sample_session.view
    _drawn(sample_session)
    panel = window.view_panel
    undo_before = window.action_map["undo"].isEnabled()

    panel.low.editingFinished.emit()  # focus moved through the box, nothing typed
    panel.high.editingFinished.emit()

    assert view._manual_clims == {} and window.action_map["undo"].isEnabled() == undo_before
    panel.low.setValue(panel.high.value() / 2)  # typed in: now it is pinned
    panel.low.editingFinished.emit()
    assert set(view._manual_clims) == {panel.contrast_role.currentData()}


def test_limits_pinned_on_the_residual_go_with_the_prediction_they_were_set_for(sample_session):
    document, view = sample_session.document, sample_session.view
    target = document.volume("target")
    document.set_volume("prediction", target.replace(data=target.data + 0.25, source=None))
    view.set_clim("residual", (0.2, 0.3))
    document.set_spacing(tuple(2 * s for s in target.spacing))  # the same data in another voxel size: kept
    assert view._manual_clims == {"residual": (0.2, 0.3)}

    document.set_volume("prediction", target.replace(data=target.data - 4.0, source=None))

    assert "residual" not in view._manual_clims


def test_show_residual_is_checked_exactly_when_the_fourth_panel_shows_the_residual(sample_session):
    window, view = sample_session.window, sample_session.view
    action = window.action_map["show_residual"]
    action.trigger()
    assert action.isChecked() and view.extra_panel == "residual"
    view.update(extra_panel="uncertainty")  # as Show uncertainty does
    assert not action.isChecked()
    action.trigger()  # shows the residual again, rather than hiding the uncertainty
    assert view.extra_panel == "residual" and action.isChecked()
    view.update(extra_panel="none")
    assert not action.isChecked()


def test_a_settled_preview_stays_settled_in_a_new_voxel_size(sample_session):
    document, viewports = sample_session.document, sample_session.window.viewports
    raw = document.volume("raw")
    document.set_volume("prediction", raw.replace(data=raw.data * 0.5, name="preview 3", metadata={"preview": 3}))
    assert viewports.is_draft("prediction")
    document.set_model_path("trained.keras")  # training ended on that preview
    assert not viewports.is_draft("prediction")

    document.set_spacing(tuple(2 * s for s in raw.spacing))

    assert not viewports.is_draft("prediction") and not viewports.is_draft("residual")
