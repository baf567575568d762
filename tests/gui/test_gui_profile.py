"""Line profile: drag a line on a slice view; the Profile tab plots raw/target/predicted along it with each FWHM."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from voxelstudio.metrics.profile import line_profile, peak_fwhm

pytestmark = pytest.mark.gui


def _mouse(canvas, kind, point, buttons):
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
    event = QMouseEvent(kind, point, canvas.mapToGlobal(point), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas, event)


def _pixel(canvas, plane, u, v):
    """Widget coordinates (logical pixels, origin top-left) of the data point (u, v) of ``plane``."""
    x, y = canvas._axes[plane].transData.transform((u, v))
    ratio = canvas.device_pixel_ratio
    return QPointF(x / ratio, canvas.height() - y / ratio)


def test_profile_values_are_the_arrays_values_along_the_line(qtbot, sample_session):
    window, document = sample_session.window, sample_session.document
    raw = document.volume("raw")
    panel = window.slices.panels["raw"]
    qtbot.waitUntil(lambda: panel.volume is raw and bool(panel._axes), timeout=10_000)
    y, z = 64, 16
    panel.index = (y, 0, z)
    panel.draw_line("xy", (y, 10.0, z), (y, 100.0, z))
    plot = window.profile_panel.plot
    assert set(plot.profiles) == {"raw", "target"}
    distance, values = plot.profiles["raw"]
    np.testing.assert_allclose(values, raw.data[y, 10:101, z], rtol=1e-6)
    np.testing.assert_allclose(distance, np.arange(91) * raw.spacing[1])
    assert window.tabs.currentIndex() == window.tabs.indexOf(window.profile_panel)
    assert "FWHM of the peak: Raw" in window.profile_panel.summary.text()
    qtbot.waitUntil(lambda: plot.isVisible() and hasattr(plot, "lines"), timeout=5_000)
    drawn = {role: line.get_visible() for role, line in plot.lines.items()}
    assert drawn == {"raw": True, "target": True, "prediction": False}  # no prediction yet: its curve is hidden
    np.testing.assert_allclose(plot.lines["raw"].get_xdata(), distance)


def test_dragging_on_the_xz_view_profiles_along_the_drag(qtbot, sample_session):
    window, document = sample_session.window, sample_session.document
    target = document.volume("target")
    canvas = window.slices.panels["target"]
    qtbot.waitUntil(lambda: canvas.volume is target and bool(canvas._axes), timeout=10_000)
    canvas.draw()
    lines = []
    window.slices.line_drawn.connect(lambda volume, start, end: lines.append((volume, start, end)))
    _sy, sx, sz = target.spacing
    start, end = _pixel(canvas, "xz", 40 * sx, 2 * sz), _pixel(canvas, "xz", 40 * sx, 29 * sz)
    _mouse(canvas, QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton)
    for step in np.linspace(0, 1, 5)[1:]:
        _mouse(canvas, QEvent.Type.MouseMove, start + (end - start) * float(step), Qt.MouseButton.LeftButton)
    _mouse(canvas, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)
    assert lines, "dragging drew no line"
    volume, first, last = lines[-1]
    assert volume is target
    assert last[1] == pytest.approx(40, abs=0.6) and last[2] == pytest.approx(29, abs=0.6) and first[2] < 3
    _, values = window.profile_panel.plot.profiles["target"]
    np.testing.assert_allclose(values, line_profile(target.data, first, last, target.spacing)[1], rtol=1e-6)


def test_peak_fwhm_of_a_gaussian():
    x = np.arange(41, dtype=float)
    sigma = 3.0
    values = 5 + np.exp(-((x - 20.3) ** 2) / (2 * sigma**2))
    assert peak_fwhm(x * 0.1, values) == pytest.approx(2.3548 * sigma * 0.1, rel=0.03)
    assert peak_fwhm(x, np.linspace(0, 1, 41)) is None  # no peak inside the line
