"""Small matplotlib canvases (Qt backend): the live loss and preview-quality curves and the contrast histogram."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QSizePolicy, QWidget

from voxelstudio.gui.canvas import QuietCanvas
from voxelstudio.render import histogram

FACE = "#1b2026"
TEXT = "#c9d1d9"
TRAIN_COLOR = "#4fc3f7"
VAL_COLOR = "#f0c05a"
PSNR_COLOR = "#7bd88f"
RATIO_COLOR = "#c792ea"
CLIM_COLOR = "#ef6c6c"
REDRAW_MS = 500


def styled_axes(figure: Figure):
    """One dark axes filling ``figure``, in the window's colours."""
    axes = figure.add_subplot(111)
    axes.set_facecolor(FACE)
    axes.tick_params(which="both", colors=TEXT, labelsize=7)
    for spine in axes.spines.values():
        spine.set_color("#555d66")
    return axes


class _LivePlot(QuietCanvas):
    """A canvas that collects points as training goes and redraws at most every ``REDRAW_MS``."""

    def __init__(self, parent: QWidget | None, figure: Figure) -> None:
        super().__init__(figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._redraw_timer = QTimer(self, singleShot=True, interval=REDRAW_MS)
        self._redraw_timer.timeout.connect(self.refresh)

    def schedule_redraw(self) -> None:
        """Redraw at most every ``REDRAW_MS`` (a redraw costs tens of milliseconds; steps come faster)."""
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()


def _legend(axes, handles=None) -> None:
    axes.legend(handles=handles, loc="upper right", fontsize=7, facecolor=FACE, labelcolor=TEXT, edgecolor="#555d66")


EMPTY_EPOCHS = (0, 10)
"""The epoch axis a training plot shows before its first point."""


class LossPlot(_LivePlot):
    """Training loss per step (on patches) and validation loss per epoch, on a log scale."""

    def __init__(self, parent: QWidget | None = None, *, validation_label: str = "validation") -> None:
        figure = Figure(figsize=(3, 2), facecolor=FACE)
        figure.subplots_adjust(left=0.16, right=0.97, top=0.95, bottom=0.24)
        super().__init__(parent, figure)
        self.setMinimumHeight(150)
        self.validation_label = validation_label
        self.clear()

    def build(self) -> None:
        self.axes = styled_axes(self.figure)
        self.axes.set_xlabel("epoch", color=TEXT, fontsize=8)
        self.axes.set_yscale("log")
        # plain numbers at 1-2-5 steps: matplotlib's default minor labels (x10^-1 ...) collide over a narrow range
        self.axes.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        for formatter in (self.axes.yaxis.set_major_formatter, self.axes.yaxis.set_minor_formatter):
            formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
        (self.train_line,) = self.axes.plot([], [], color=TRAIN_COLOR, lw=1.0, label="training patches")
        (self.val_line,) = self.axes.plot([], [], color=VAL_COLOR, lw=1.5, marker="o", ms=3)

    def set_validation_label(self, label: str) -> None:
        self.validation_label = label
        self.refresh()

    def clear(self) -> None:
        self.train: tuple[list[float], list[float]] = ([], [])
        self.val: tuple[list[float], list[float]] = ([], [])
        self.refresh()

    def add(self, epoch_position: float, loss: float, val_epoch: int | None = None, val_loss: float = math.nan) -> None:
        """Add a training loss at a fractional epoch, and a validation loss once per finished epoch."""
        if math.isfinite(loss) and loss > 0:
            self.train[0].append(epoch_position)
            self.train[1].append(loss)
        if val_epoch is not None and math.isfinite(val_loss) and val_loss > 0 and val_epoch not in self.val[0]:
            self.val[0].append(val_epoch)
            self.val[1].append(val_loss)
        self.schedule_redraw()

    def redraw(self) -> None:
        self.ensure_built()
        if self.val_line.get_label() != self.validation_label:
            self.val_line.set_label(self.validation_label)
            _legend(self.axes)
        self.train_line.set_data(*self.train)
        self.val_line.set_data(*self.val)
        xs = self.train[0] + self.val[0]
        ys = self.train[1] + self.val[1]
        if xs:
            self.axes.set_xlim(0, max(max(xs), 1.0))
            low, high = min(ys), max(ys)
            self.axes.set_ylim(low / 1.5, high * 1.5)
        else:  # before the first step: epochs and a loss range, not matplotlib's -0.04 ... 0.04
            self.axes.set_xlim(*EMPTY_EPOCHS)
            self.axes.set_ylim(1e-3, 1.0)
        self.draw_idle()


class QualityPlot(_LivePlot):
    """Validation PSNR per epoch (left axis) and the live preview's median z/xy bead FWHM ratio (right axis), with
    the target's own ratio as a dashed reference: the preview's ratio should fall towards it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        figure = Figure(figsize=(3, 1.6), facecolor=FACE)
        figure.subplots_adjust(left=0.12, right=0.88, top=0.82, bottom=0.14)
        super().__init__(parent, figure)
        self.setMinimumHeight(120)
        self.clear()

    def build(self) -> None:
        self.axes = styled_axes(self.figure)  # x: epoch (labelled in the loss plot above)
        self.ratio_axes = self.axes.twinx()
        self.ratio_axes.tick_params(colors=TEXT, labelsize=7)
        for spine in self.ratio_axes.spines.values():
            spine.set_color("#555d66")
        (self.psnr_line,) = self.axes.plot([], [], color=PSNR_COLOR, lw=1.5, marker="o", ms=3, label="PSNR (dB)")
        (self.ratio_line,) = self.ratio_axes.plot(
            [], [], color=RATIO_COLOR, lw=1.5, marker="s", ms=3, label="preview z/xy FWHM"
        )
        self.target_line = self.ratio_axes.axhline(math.nan, color=RATIO_COLOR, lw=1, ls="--", label="target z/xy")
        handles = [self.psnr_line, self.ratio_line, self.target_line]
        self.figure.legend(handles=handles, loc="upper center", ncol=3, fontsize=7, frameon=False, labelcolor=TEXT,
                           handlelength=1.5, columnspacing=1.0)  # fmt: skip

    def clear(self) -> None:
        self.psnr: tuple[list[float], list[float]] = ([], [])
        self.ratio: tuple[list[float], list[float]] = ([], [])
        self.target_ratio = math.nan
        self.refresh()

    def add_psnr(self, epoch: int, value: float) -> None:
        """Validation PSNR of a finished epoch (once per epoch; NaN is skipped)."""
        if math.isfinite(value) and epoch not in self.psnr[0]:
            self.psnr[0].append(epoch)
            self.psnr[1].append(value)
            self.schedule_redraw()

    def add_ratio(self, epoch: int, ratio: float | None, target_ratio: float | None = None) -> None:
        """A preview's median z/xy FWHM ratio (None when no bead could be measured) and the target's."""
        if target_ratio is not None and math.isfinite(target_ratio):
            self.target_ratio = float(target_ratio)
        if ratio is not None and math.isfinite(ratio) and epoch not in self.ratio[0]:
            self.ratio[0].append(epoch)
            self.ratio[1].append(float(ratio))
        self.schedule_redraw()

    def redraw(self) -> None:
        self.ensure_built()
        self.psnr_line.set_data(*self.psnr)
        self.ratio_line.set_data(*self.ratio)
        self.target_line.set_ydata([self.target_ratio, self.target_ratio])
        epochs = self.psnr[0] + self.ratio[0]
        self.axes.set_xlim(0.5, max(max(epochs, default=EMPTY_EPOCHS[1]) + 0.5, 2.0))
        low, high = (min(self.psnr[1]), max(self.psnr[1])) if self.psnr[1] else (30.0, 40.0)  # typical dB
        self.axes.set_ylim(low - 1.0, high + 1.0)
        ratios = self.ratio[1] + ([self.target_ratio] if math.isfinite(self.target_ratio) else [])
        low, high = (min(ratios), max(ratios)) if ratios else (1.0, 2.0)  # a round bead .. twice as long
        self.ratio_axes.set_ylim(low - 0.2, high + 0.2)
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
        self.counts: tuple[np.ndarray, np.ndarray] | None = None  # (counts, edges)
        self.limits = (0.0, 1.0)
        self._bars = None
        self._bars_stale = False

    def build(self) -> None:
        self.axes = styled_axes(self.figure)
        self.axes.set_yticks([])
        self._limit_lines = tuple(self.axes.axvline(value, color=CLIM_COLOR, lw=1) for value in self.limits)

    def set_data(self, data: np.ndarray | None) -> None:
        if data is None and self.counts is None:
            return  # already empty (a redraw costs tens of ms)
        self.counts = None if data is None else histogram(data, bins=96)
        self._bars_stale = True
        self.refresh()

    def set_limits(self, low: float, high: float) -> None:
        if (low, high) != self.limits:  # unchanged limits need no redraw
            self.limits = (low, high)
            self.refresh()

    def redraw(self) -> None:
        self.ensure_built()
        if self._bars_stale:
            self._bars_stale = False
            if self._bars is not None:
                self._bars.remove()
                self._bars = None
            if self.counts is not None:
                counts, edges = self.counts
                self._bars = self.axes.stairs(np.log1p(counts), edges, fill=True, color="#8a96a3")
                self.axes.set_xlim(edges[0], edges[-1])
                self.axes.set_ylim(0, max(float(np.log1p(counts).max()), 1.0) * 1.05)
        for line, value in zip(self._limit_lines, self.limits, strict=True):
            line.set_xdata([value, value])
        self.draw_idle()
