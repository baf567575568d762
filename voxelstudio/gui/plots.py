"""Small matplotlib canvases (Qt backend): the live loss curves and the contrast histogram."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QSizePolicy, QWidget

from voxelstudio.gui.canvas import QuietCanvas
from voxelstudio.render import histogram

FACE = "#1b2026"
TEXT = "#c9d1d9"
TRAIN_COLOR = "#4fc3f7"
VAL_COLOR = "#f0c05a"
CLIM_COLOR = "#ef6c6c"
REDRAW_MS = 500


def styled_axes(figure: Figure):
    """One dark axes filling ``figure``, in the window's colours."""
    axes = figure.add_subplot(111)
    axes.set_facecolor(FACE)
    axes.tick_params(colors=TEXT, labelsize=7)
    for spine in axes.spines.values():
        spine.set_color("#555d66")
    return axes


class LossPlot(QuietCanvas):
    """Training loss per step (on patches) and validation loss per epoch, on a log scale."""

    def __init__(self, parent: QWidget | None = None, *, validation_label: str = "validation") -> None:
        figure = Figure(figsize=(3, 2), facecolor=FACE)
        figure.subplots_adjust(left=0.16, right=0.97, top=0.95, bottom=0.2)
        super().__init__(figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(150)
        self.axes = styled_axes(figure)
        self.axes.set_xlabel("epoch", color=TEXT, fontsize=8)
        self.axes.set_yscale("log")
        (self.train_line,) = self.axes.plot([], [], color=TRAIN_COLOR, lw=1.0, label="training patches")
        (self.val_line,) = self.axes.plot([], [], color=VAL_COLOR, lw=1.5, marker="o", ms=3, label=validation_label)
        self.axes.legend(loc="upper right", fontsize=7, facecolor=FACE, labelcolor=TEXT, edgecolor="#555d66")
        self._redraw_timer = QTimer(self, singleShot=True, interval=REDRAW_MS)
        self._redraw_timer.timeout.connect(self._redraw)
        self.clear()

    def clear(self) -> None:
        self.train = ([], [])
        self.val = ([], [])
        self._redraw()

    def schedule_redraw(self) -> None:
        """Redraw at most every ``REDRAW_MS`` (a redraw costs tens of milliseconds; steps come faster)."""
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def add(self, epoch_position: float, loss: float, val_epoch: int | None = None, val_loss: float = math.nan) -> None:
        """Add a training loss at a fractional epoch, and a validation loss once per finished epoch."""
        if math.isfinite(loss) and loss > 0:
            self.train[0].append(epoch_position)
            self.train[1].append(loss)
        if val_epoch is not None and math.isfinite(val_loss) and val_loss > 0 and val_epoch not in self.val[0]:
            self.val[0].append(val_epoch)
            self.val[1].append(val_loss)
        self.schedule_redraw()

    def _redraw(self) -> None:
        self.train_line.set_data(*self.train)
        self.val_line.set_data(*self.val)
        xs = self.train[0] + self.val[0]
        ys = self.train[1] + self.val[1]
        if xs:
            self.axes.set_xlim(0, max(max(xs), 1.0))
            low, high = min(ys), max(ys)
            self.axes.set_ylim(low / 1.5, high * 1.5)
        self.draw_idle()


class HistogramPlot(QuietCanvas):
    """Log-count histogram of a volume with the contrast limits marked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        figure = Figure(figsize=(3, 1.2), facecolor=FACE)
        figure.subplots_adjust(left=0.03, right=0.97, top=0.95, bottom=0.28)
        super().__init__(figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(90)
        self.axes = styled_axes(figure)
        self.axes.set_yticks([])
        self._limits = (self.axes.axvline(0, color=CLIM_COLOR, lw=1), self.axes.axvline(1, color=CLIM_COLOR, lw=1))
        self._bars = None

    def set_data(self, data: np.ndarray | None) -> None:
        if self._bars is not None:
            self._bars.remove()
            self._bars = None
        if data is not None:
            counts, edges = histogram(data, bins=96)
            self._bars = self.axes.stairs(np.log1p(counts), edges, fill=True, color="#8a96a3")
            self.axes.set_xlim(edges[0], edges[-1])
            self.axes.set_ylim(0, max(float(np.log1p(counts).max()), 1.0) * 1.05)
        self.draw_idle()

    def set_limits(self, low: float, high: float) -> None:
        for line, value in zip(self._limits, (low, high), strict=True):
            line.set_xdata([value, value])
        self.draw_idle()
