"""Help > Environment: doctor's report, gathered off the GUI thread, with a Copy button."""

from __future__ import annotations

import time

import pytest
from PySide6.QtGui import QGuiApplication

from voxelstudio.gui.dialogs import EnvironmentDialog

pytestmark = pytest.mark.gui


def test_environment_shows_gathering_at_once_then_doctors_report(qtbot, session):
    window = session.window
    started = time.monotonic()
    window.action_map["environment"].trigger()
    assert time.monotonic() - started < 1.0  # the report takes seconds; the GUI thread does not wait for it
    dialog = window.findChild(EnvironmentDialog)
    assert dialog is not None and dialog.isVisible()
    assert dialog.text.toPlainText() == EnvironmentDialog.GATHERING
    assert not dialog.copy_button.isEnabled()
    qtbot.waitUntil(dialog.copy_button.isEnabled, timeout=180_000)
    text = dialog.text.toPlainText()
    assert text.startswith("VoxelStudio ") and "Backend for jobs:" in text and "OpenGL:" in text and "Qt:" in text
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == text
    dialog.close()


def test_environment_failure_says_so(qtbot, session, monkeypatch):
    def broken(**_):
        raise OSError("no probes today")

    monkeypatch.setattr("voxelstudio.tasks.doctor.environment_report", broken)
    session.window.action_map["environment"].trigger()
    dialog = session.window.findChild(EnvironmentDialog)
    qtbot.waitUntil(dialog.copy_button.isEnabled, timeout=10_000)
    assert "could not be gathered" in dialog.text.toPlainText()
    monkeypatch.setattr("voxelstudio.tasks.doctor.environment_report", lambda **_: {})
    monkeypatch.setattr("voxelstudio.tasks.doctor.format_report", lambda report: "fresh report")
    session.window.action_map["environment"].trigger()  # again: the same dialog, gathering anew
    assert session.window.findChildren(EnvironmentDialog) == [dialog]
    qtbot.waitUntil(lambda: dialog.text.toPlainText() == "fresh report", timeout=10_000)
