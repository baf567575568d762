"""Canvases in hidden tabs build their axes and draw only when shown, with the data they were given meanwhile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtWidgets import QTabWidget, QWidget

from voxelstudio.gui.class_plots import AccuracyPlot, ConfusionPlot
from voxelstudio.gui.plots import HistogramPlot, LossPlot


def test_hidden_plots_build_on_first_show_with_the_latest_data(qtbot):
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.addTab(QWidget(), "front")
    loss, accuracy, confusion = LossPlot(validation_label="whole volume"), AccuracyPlot(), ConfusionPlot()
    for plot in (loss, accuracy, confusion):
        tabs.addTab(plot, type(plot).__name__)
    tabs.show()
    qtbot.waitExposed(tabs)

    loss.add(0.5, 0.2)
    loss.add(1.0, 0.1, val_epoch=1, val_loss=0.15)
    accuracy.clear(4)
    accuracy.add(1, 0.5)
    confusion.set_confusion(["a", "b"], [[3, 1], [0, 4]], title="test")
    assert not any(plot.figure.axes for plot in (loss, accuracy, confusion))  # nothing built while hidden

    tabs.setCurrentWidget(loss)
    qtbot.waitUntil(lambda: bool(loss.figure.axes))
    assert loss.train_line.get_xydata().tolist() == [[0.5, 0.2], [1.0, 0.1]]
    assert loss.val_line.get_xydata().tolist() == [[1.0, 0.15]]
    assert loss.axes.get_legend().get_texts()[1].get_text() == "whole volume"

    tabs.setCurrentWidget(accuracy)
    qtbot.waitUntil(lambda: bool(accuracy.figure.axes))
    assert accuracy.line.get_xydata().tolist() == [[1.0, 0.5]]
    assert accuracy.chance.get_ydata()[0] == 0.25

    tabs.setCurrentWidget(confusion)
    qtbot.waitUntil(lambda: bool(confusion.figure.axes))
    assert confusion.axes.get_images()[0].get_array().tolist() == [[3, 1], [0, 4]]

    tabs.setCurrentIndex(0)  # hidden again: new data waits, then shows
    loss.set_validation_label("validation")
    loss.add(2.0, 0.05, val_epoch=2, val_loss=0.08)
    loss.refresh()
    assert len(loss.train_line.get_xdata()) == 2
    tabs.setCurrentWidget(loss)
    qtbot.waitUntil(lambda: len(loss.train_line.get_xdata()) == 3)
    assert loss.axes.get_legend().get_texts()[1].get_text() == "validation"
    assert not math.isnan(loss.axes.get_ylim()[0])


def test_histogram_set_while_hidden_shows_the_data_and_limits_when_shown(qtbot):
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.addTab(QWidget(), "front")
    histogram = HistogramPlot()
    tabs.addTab(histogram, "histogram")
    tabs.show()
    qtbot.waitExposed(tabs)
    data = np.linspace(0.0, 4.0, 1000, dtype=np.float32)
    histogram.set_data(data)
    histogram.set_limits(1.0, 3.0)
    assert not histogram.figure.axes

    tabs.setCurrentWidget(histogram)
    qtbot.waitUntil(lambda: histogram._bars is not None)
    assert histogram.axes.get_xlim() == (0.0, 4.0)
    assert [line.get_xdata()[0] for line in histogram._limit_lines] == [1.0, 3.0]

    tabs.setCurrentIndex(0)
    histogram.set_data(None)  # a volume closed while the tab is hidden
    tabs.setCurrentWidget(histogram)
    qtbot.waitUntil(lambda: histogram._bars is None)


def test_visible_canvases_draw_one_per_turn_and_a_canvas_hidden_meanwhile_draws_when_shown(qtbot, monkeypatch):
    """The loss and quality plots of a training epoch drew back to back (one stall of both draws): now each draw
    is its own turn of the event loop. A canvas hidden before its turn draws when it is shown again."""
    from PySide6.QtCore import QEventLoop, QTimer

    from voxelstudio.gui.canvas import DRAWS, QuietCanvas

    window = QWidget()
    qtbot.addWidget(window)
    first, second = (QuietCanvas(figure_with_axes()) for _ in range(2))
    for canvas in (first, second):
        canvas.setParent(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: not DRAWS.waiting, timeout=2_000)  # the first draws on show
    drawn: list[str] = []
    for name, canvas in (("first", first), ("second", second)):
        original = canvas.draw
        monkeypatch.setattr(canvas, "draw", lambda name=name, original=original: (drawn.append(name), original()))

    first.draw_idle()
    second.draw_idle()
    first.draw_idle()  # asked twice: drawn once
    one_turn = QEventLoop()
    QTimer.singleShot(0, one_turn.quit)  # posted after the queue's timer: runs after the first draw, before the next
    one_turn.exec()
    assert drawn == ["first"]
    qtbot.waitUntil(lambda: drawn == ["first", "second"], timeout=2_000)

    drawn.clear()
    second.draw_idle()
    second.hide()  # hidden before its turn
    qtbot.wait(50)
    assert drawn == []
    second.show()
    qtbot.waitUntil(lambda: drawn == ["second"], timeout=2_000)


def test_a_canvas_just_shown_draws_in_a_later_turn_than_the_one_that_paints_it(qtbot, monkeypatch):
    """The first click on Train showed the tab and drew its loss plot in one turn of the event loop: the plot's draw
    now waits SHOWN_DRAW_DELAY_MS, so the tab's paint and the draw are two stalls, not one."""
    from voxelstudio.gui import canvas as canvas_module
    from voxelstudio.gui.canvas import DRAWS, SHOWN_DRAW_DELAY_MS, QuietCanvas

    window = QWidget()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    plot = QuietCanvas(figure_with_axes())  # not built yet: it builds and draws when first shown
    plot.setParent(window)
    asked, drawn = [], []
    add = DRAWS.add
    monkeypatch.setattr(
        canvas_module.DRAWS, "add", lambda canvas, delay_ms=0: (asked.append(delay_ms), add(canvas, delay_ms))
    )
    original = plot.draw
    monkeypatch.setattr(plot, "draw", lambda: (drawn.append(True), original()))
    plot.show()
    assert asked == [SHOWN_DRAW_DELAY_MS] and drawn == []
    qtbot.waitUntil(lambda: drawn == [True], timeout=2_000)
    plot.draw_idle()  # new data while it shows: the next turn
    assert asked[-1] == 0
    qtbot.waitUntil(lambda: len(drawn) == 2, timeout=2_000)


def figure_with_axes():
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    figure.add_subplot(111).plot([0, 1], [0, 1])
    return figure


def test_empty_training_plots_show_epochs_and_plausible_ranges_not_matplotlibs_default(qtbot):
    from voxelstudio.gui.plots import EMPTY_EPOCHS, QualityPlot

    loss, quality = LossPlot(), QualityPlot()
    for plot in (loss, quality):
        qtbot.addWidget(plot)
        plot.show()
        plot.refresh()
    qtbot.waitUntil(lambda: bool(loss.figure.axes) and bool(quality.figure.axes))
    assert loss.axes.get_xlim() == EMPTY_EPOCHS and loss.axes.get_ylim() == pytest.approx((1e-3, 1.0))
    assert quality.axes.get_ylim() == (29.0, 41.0) and quality.ratio_axes.get_ylim() == pytest.approx((0.8, 2.2))
    loss.add(0.5, 0.02)
    loss.redraw()
    assert loss.axes.get_xlim() == (0.0, 1.0)  # data takes over
