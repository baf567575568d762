"""The window opens, shows the sample in every panel, and its views agree with each other."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QPushButton

from tests.gui.conftest import panel_image, panel_pixels, wait_for_pixels, wait_idle
from voxelstudio.gui.viewports import PANEL_ROLES

pytestmark = pytest.mark.gui


def test_sample_renders_in_raw_and_target_panels(sample_session):
    document = sample_session.document
    assert document.volume("raw").shape == document.volume("target").shape == (128, 128, 32)
    for role in ("raw", "target"):
        assert panel_pixels(sample_session, role) > 2000, role
    sample_session.window.viewports.flush()
    titles = {role: panel.title.text() for role, panel in sample_session.window.viewports.panels.items()}
    assert "Raw" in titles["raw"] and "128×128×32" in titles["raw"]
    assert "Target" in titles["target"]


def test_prediction_panel_fills_and_contrast_is_shared(qtbot, sample_session):
    document, view = sample_session.document, sample_session.view
    target = document.volume("target")
    before = panel_pixels(sample_session, "prediction")
    document.set_volume("prediction", target.replace(data=target.data * 0.5, name="half"))
    assert panel_pixels(sample_session, "prediction") > before + 1000
    volumes = document.volumes()
    assert view.clim_for("prediction", volumes["prediction"], volumes) == view.clim_for("target", target, volumes)
    view.update(link_contrast=False)
    assert view.clim_for("prediction", volumes["prediction"], volumes)[1] < view.clim_for("target", target, volumes)[1]


@pytest.mark.parametrize("mode", ["composite", "isosurface", "slices"])
def test_render_modes_draw_something(sample_session, mode):
    def raw_panel():
        return panel_image(sample_session, "raw")

    mip = raw_panel()  # the fixture's mode
    sample_session.view.update(mode=mode)
    empty = panel_pixels(sample_session, "prediction")  # no prediction yet: the overlays alone
    assert panel_pixels(sample_session, "raw") > empty + 1000
    changed = np.abs(raw_panel() - mip).sum(-1) > 40
    assert changed.sum() > 1000  # drawn in this mode, not the MIP left in place


def test_cameras_are_linked(sample_session):
    panels = sample_session.window.viewports.panels
    raw_camera = panels["raw"].plotter.renderer.GetActiveCamera()
    assert all(p.plotter.renderer.GetActiveCamera() is raw_camera for p in panels.values())
    panels["target"].plotter.camera.Azimuth(40)
    assert panels["raw"].plotter.camera.position == panels["target"].plotter.camera.position


def test_residual_panel_shows_prediction_minus_target(qtbot, sample_session):
    document, window = sample_session.document, sample_session.window
    target = document.volume("target")
    document.set_volume("prediction", target.replace(data=target.data + 0.25))
    window.action_map["show_residual"].trigger()
    window.viewports.flush()
    extra = window.viewports.panels["extra"]
    assert extra.isVisible() and "Residual" in extra.title.text()
    np.testing.assert_allclose(document.residual().data, 0.25, atol=1e-6)
    wait_for_pixels(qtbot, sample_session, "extra", more_than=1000)


def test_slices_follow_the_cursor_and_probe_reads_values(sample_session):
    slices, view, document = sample_session.window.slices, sample_session.view, sample_session.document
    assert view.cursor == (64, 64, 16)
    slices.sliders["z"].setValue(5)
    assert view.cursor == (64, 64, 5)
    raw_panel = slices.panels["raw"]
    np.testing.assert_array_equal(raw_panel._images["xy"].get_array(), document.volume("raw").data[:, :, 5])
    text = slices.probe_text((3, 4, 5))
    assert "(3, 4, 5)" in text
    assert f"raw {document.volume('raw').data[3, 4, 5]:.4g}" in text
    assert f"target {document.volume('target').data[3, 4, 5]:.4g}" in text


def test_slices_draw_new_data_after_the_3d_panels_one_panel_per_turn(qtbot, sample_session, monkeypatch):
    window, document = sample_session.window, sample_session.document
    slices, viewports = window.slices, window.viewports
    drawn = []  # (panels drawn together, whether 3-D drawing was still pending)
    original = type(slices).refresh
    monkeypatch.setattr(
        slices,
        "refresh",
        lambda roles=PANEL_ROLES, *, now=False: (
            drawn.append((roles, viewports.drawing_pending)) or original(slices, roles, now=now)
        ),
    )
    raw, target = document.volume("raw"), document.volume("target")
    brighter_raw, brighter_target = raw.replace(data=raw.data * 2.0), target.replace(data=target.data * 2.0)
    document.set_volume("raw", brighter_raw)
    document.set_volume("target", brighter_target)  # target's data shows in the target, predicted and fourth panels
    assert viewports.drawing_pending and slices.panels["raw"].volume is raw
    qtbot.waitUntil(lambda: len(drawn) == 4)
    assert slices.panels["raw"].volume is brighter_raw and slices.panels["target"].volume is brighter_target
    assert drawn and all(not pending for _roles, pending in drawn)
    assert [roles for roles, _pending in drawn] == [("raw",), ("target",), ("prediction",), ("extra",)]
    document.set_volume("raw", raw)
    document.set_volume("target", target)


def test_clicking_a_slice_moves_the_cursor(qtbot, sample_session):
    from matplotlib.backend_bases import MouseButton, MouseEvent

    panel = sample_session.window.slices.panels["raw"]
    panel.draw()
    axes = panel._axes["xz"]
    x_px, y_px = axes.transData.transform((3.0, 1.0))  # x = 3 µm, z = 1 µm at 0.1 µm voxels
    event = MouseEvent("button_press_event", panel, x_px, y_px, button=MouseButton.LEFT)
    panel.callbacks.process("button_press_event", event)
    y, x, z = sample_session.view.cursor
    assert (x, z) == (30, 10) and y == 64


def test_spacing_edit_applies_to_every_volume(qtbot, sample_session):
    panel = sample_session.window.view_panel
    for box, value in zip(panel.spacing, (0.2, 0.2, 0.5), strict=True):
        box.setValue(value)
    panel.findChild(QPushButton, "apply_spacing").click()
    wait_idle(qtbot, sample_session)
    for volume in sample_session.document.volumes().values():
        assert volume.spacing == (0.2, 0.2, 0.5)
    sample_session.window.viewports.flush()
    bounds = sample_session.window.viewports.panels["raw"].image().bounds
    assert bounds[5] == pytest.approx(31 * 0.5)


def test_settings_remember_the_layout(qtbot, tmp_path, dialogs):
    """A window closed with its splitters moved opens with them where they were. (Xvfb's screen is narrower than the
    window, so the restored width is the screen's and the side-by-side split is checked as saved, not as drawn.)"""
    from PySide6.QtCore import QSettings

    from voxelstudio.app import build_session

    def open_window():
        built = build_session(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                              runs_dir=tmp_path / "runs")  # fmt: skip
        built.window.show()
        qtbot.waitExposed(built.window)
        return built.window

    first = open_window()
    default_main, default_views = first.main_splitter.sizes(), first.views_splitter.sizes()
    first.main_splitter.setSizes([sum(default_main) - 500, 500])
    main_state = first.main_splitter.saveState()
    first.views_splitter.setSizes([sum(default_views) // 3, sum(default_views) - sum(default_views) // 3])
    views = first.views_splitter.sizes()
    assert first.main_splitter.sizes() != default_main and views != default_views  # so the checks below can fail
    first.close()  # saves the layout

    second = open_window()
    assert second.views_splitter.sizes() == views
    assert (
        QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat).value("window/main_splitter")
        == main_state
    )
    assert second.height() == first.height()
    second.close()
