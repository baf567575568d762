"""Issue 16: the window fits a 1280x800 screen, names files and models, and starts dialogs outside the package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import build_window, close_window
from voxelstudio.core.volume import Volume
from voxelstudio.gui import settings as gui_settings
from voxelstudio.gui.naming import export_name, maker_name

pytestmark = pytest.mark.gui

LONG_NAME = "a_really_long_file_name_from_the_microscope_session_2026-12-04_sample_07_deconvolved_registered"


def test_four_panels_and_a_long_file_name_fit_1280_by_800(qtbot, session):
    window, document = session.window, session.document
    volume = Volume(np.random.default_rng(0).random((32, 32, 8), dtype=np.float32), name=LONG_NAME)
    for role in ("raw", "target", "prediction"):
        document.set_volume(role, volume)
    session.view.update(extra_panel="residual")
    window.viewports.flush()
    QApplication.processEvents()
    minimum = window.minimumSizeHint().expandedTo(window.minimumSize())
    assert minimum.width() <= 1280 and minimum.height() <= 800, minimum
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.width() == 1280)
    QApplication.processEvents()
    for role, panel in window.viewports.panels.items():
        assert panel.isVisible(), role
        assert panel.geometry().right() < window.viewports.width() + 1, role
    title = window.viewports.panels["raw"].title
    assert LONG_NAME in title.text() and LONG_NAME in title.toolTip()  # the whole title, in the tooltip
    assert LONG_NAME not in title.shown_text() and "…" in title.shown_text()  # shortened where drawn
    assert window.tabs.geometry().right() <= window.centralWidget().width()
    assert window.windowTitle() == f"{LONG_NAME} — VoxelStudio"
    for index in range(window.tabs.count()):  # no side tab needs a horizontal scroll bar at this size
        window.tabs.setCurrentIndex(index)
        QApplication.processEvents()
        page = window.tabs.widget(index)
        assert page.horizontalScrollBar().maximum() == 0, window.tabs.tabText(index)


def test_restored_geometry_is_clamped_to_the_screen(qtbot, tmp_path, dialogs):
    first = build_window(tmp_path)
    first.window.setGeometry(0, 0, 2600, 1700)
    close_window(first.window)  # saves a geometry far bigger than the 1280x800 screen
    second = build_window(tmp_path)  # build_window resizes; restore_layout ran in the constructor
    try:
        area = second.window.screen().availableGeometry()
        second.window.restore_layout()
        geometry = second.window.frameGeometry()
        assert area.contains(geometry), (area, geometry)
        second.window.resize(2600, 1700)  # Qt's restore clamps too: the window's own fit is checked here
        second.window.move(3000, 2000)
        second.window.fit_to_screen()
        assert area.contains(second.window.frameGeometry()), (area, second.window.frameGeometry())
    finally:
        close_window(second.window)


def test_dialogs_never_start_inside_the_package(qtbot, tmp_path, monkeypatch):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    from voxelstudio.core.resources import sample_pair_paths

    raw, _target = sample_pair_paths()
    assert gui_settings.inside_package(raw.parent)
    gui_settings.remember_file(settings, raw)
    assert str(raw.resolve()) in gui_settings.recent_files(settings)  # still in Open Recent
    assert not gui_settings.inside_package(gui_settings.last_folder(settings))
    settings.setValue("files/last_folder", str(raw.parent))  # left by an older version
    assert gui_settings.last_folder(settings) == gui_settings.default_folder()
    mine = tmp_path / "scans"
    mine.mkdir()
    gui_settings.remember_file(settings, mine / "scan.tif")
    assert gui_settings.last_folder(settings) == str(mine.resolve())
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: raw.parent))  # even a home inside the package
    monkeypatch.chdir(tmp_path)
    assert gui_settings.default_folder() == str(tmp_path)


def test_open_and_export_dialogs_start_in_the_last_folder_with_the_models_name(qtbot, sample_session, monkeypatch):
    window, document = sample_session.window, sample_session.document
    asked = []
    monkeypatch.setattr("voxelstudio.gui.dialogs.get_open_path", lambda *args: asked.append(args[2]))
    monkeypatch.setattr("voxelstudio.gui.dialogs.get_save_path", lambda *args: asked.append(args[2]))
    window.action_map["open"].trigger()
    assert not gui_settings.inside_package(asked[-1])  # the sample was opened, yet Open does not start there
    raw = document.volume("raw")
    made_by = {"model": {"path": "/models/beads_v2.keras", "sha256": "0"}}
    document.set_volume("prediction", raw.replace(name="val_denoised", source=None), made_by)
    window.action_map["export_prediction"].trigger()
    suggested = Path(asked[-1])
    assert suggested.name == "val_denoised_beads_v2.mat" and not gui_settings.inside_package(suggested.parent)
    window.viewports.flush()
    assert "by beads_v2" in window.viewports.panels["prediction"].title.text()


def test_names_of_makers():
    assert maker_name(None) is None and maker_name({"method": "training preview", "epoch": 2}) is None
    assert maker_name({"method": "richardson-lucy", "iterations": 20}) == "richardson-lucy"
    assert export_name("val_denoised", "prediction", {"model": {"path": "/m/x y.keras"}}) == "val_denoised_x_y.mat"
    assert export_name("", "raw", None, ".tif") == "raw.tif"
