"""The View tab's colormap choices (shared, per panel, inverted) and contrast linking are kept between sessions."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from tests.gui.conftest import build_window, close_window
from voxelstudio.gui.view_preferences import PANEL_CMAPS_KEY, restore_view_preferences
from voxelstudio.gui.view_state import ViewState
from voxelstudio.render.colormaps import colormap

pytestmark = pytest.mark.gui


def _open_sample(qtbot, session) -> None:
    session.controller.open_sample()
    qtbot.waitUntil(
        lambda: not session.controller.busy and session.document.volume("target") is not None, timeout=60_000
    )
    session.window.viewports.flush()


def _choose(view_panel, panel: str, cmap: str) -> None:
    """Pick ``panel`` in "Colormap of" and ``cmap`` in "Colormap" as a user does."""
    view_panel.cmap_panel.setCurrentIndex(view_panel.cmap_panel.findData(panel))
    index = view_panel.cmap.findData(cmap)
    view_panel.cmap.setCurrentIndex(index)
    view_panel.cmap.activated.emit(index)


def _drawn_colour(session, panel: str, value: float) -> tuple[float, float, float]:
    """The colour the panel's 3-D volume gives ``value`` (its VTK colour transfer function)."""
    prop = session.window.viewports.panels[panel].plotter.actors["volume"].GetProperty()
    return prop.GetRGBTransferFunction(0).GetColor(value)


def test_colormaps_invert_and_linking_come_back_in_the_next_window(qtbot, tmp_path, dialogs):
    first = build_window(tmp_path)
    qtbot.waitExposed(first.window)
    view_panel = first.window.view_panel
    _choose(view_panel, "all", "green")
    _choose(view_panel, "target", "magenta")
    view_panel.invert.click()  # the target panel's own colormap: magenta, inverted
    view_panel.link.click()  # target and predicted get their own contrast limits
    assert first.view.panel_cmaps == {"target": "magenta_r"} and not first.view.link_contrast
    close_window(first.window)

    second = build_window(tmp_path)  # the same settings file, as at the next launch
    try:
        qtbot.waitExposed(second.window)
        view = second.view
        assert (view.cmap, view.invert, view.panel_cmaps, view.link_contrast) == (
            "green",
            False,
            {"target": "magenta_r"},
            False,
        )
        assert not view.history.can_undo  # restoring is not a view change to undo
        _open_sample(qtbot, second)
        viewports, slices = second.window.viewports, second.window.slices
        for panel, cmap in (("raw", "green"), ("target", "magenta_r")):
            low, high = viewports.panels[panel].style.clim
            for value, end in ((low, 0.0), (high, 1.0)):
                assert _drawn_colour(second, panel, value) == pytest.approx(colormap(cmap)(end)[:3], abs=0.02)
            assert viewports.panels[panel].colorbar.cmap == cmap
        assert _drawn_colour(second, "target", viewports.panels["target"].style.clim[0]) == pytest.approx(
            (1.0, 0.0, 1.0), abs=0.02
        )  # inverted: magenta at the low limit
        slices.refresh(now=True)
        assert slices.panels["target"]._images["xy"].get_cmap().name == "magenta_r"
        view_panel = second.window.view_panel
        view_panel.cmap_panel.setCurrentIndex(view_panel.cmap_panel.findData("target"))
        assert (view_panel.cmap.currentData(), view_panel.invert.isChecked()) == ("magenta", True)
        assert not view_panel.link.isChecked()
    finally:
        close_window(second.window)


def test_unknown_or_damaged_saved_values_are_skipped(tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("view/colormap", "no-such-map")
    settings.setValue("view/invert", True)
    settings.setValue(PANEL_CMAPS_KEY, '{"raw": "cyan", "target": "gone_r", "extra": 3}')
    view = ViewState()
    restore_view_preferences(settings, view)
    assert (view.cmap, view.invert, view.panel_cmaps) == ("gray", True, {"raw": "cyan"})
    settings.setValue(PANEL_CMAPS_KEY, "not json")
    fresh = ViewState()
    restore_view_preferences(settings, fresh)
    assert fresh.panel_cmaps == {} and not fresh.history.can_undo
