"""Classifier plots (matplotlib, Qt backend, the window's colours): validation accuracy per epoch, class
probabilities as horizontal bars, and the confusion matrix with counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from PySide6.QtWidgets import QSizePolicy, QWidget

from voxelstudio.gui.canvas import QuietCanvas
from voxelstudio.gui.plots import FACE, TEXT, TRAIN_COLOR, VAL_COLOR, styled_axes

MUTED = "#5b6672"


class _Canvas(QuietCanvas):
    def __init__(self, parent: QWidget | None, margins: dict[str, float]) -> None:
        figure = Figure(figsize=(3, 2.4), facecolor=FACE)
        figure.subplots_adjust(**margins)
        super().__init__(figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(180)

    def build(self) -> None:
        self.axes = styled_axes(self.figure)

    def _label(self, x: str = "", y: str = "") -> None:
        self.axes.set_xlabel(x, color=TEXT, fontsize=8)
        self.axes.set_ylabel(y, color=TEXT, fontsize=8)

    def _placeholder(self, text: str) -> None:
        self.axes.set_yticks([])
        self.axes.text(0.5, 0.5, text, color=MUTED, ha="center", va="center", fontsize=8, transform=self.axes.transAxes)


class AccuracyPlot(_Canvas):
    """Validation accuracy after each epoch, with the chance level dashed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, {"left": 0.14, "right": 0.97, "top": 0.9, "bottom": 0.18})
        self.clear()

    def build(self) -> None:
        super().build()
        (self.line,) = self.axes.plot([], [], color=VAL_COLOR, lw=1.5, marker="o", ms=3, label="validation")
        self.chance = self.axes.axhline(math.nan, color=MUTED, lw=1, ls="--", label="chance")
        self.axes.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=7, labelcolor=TEXT,
                         frameon=False, borderaxespad=0.2)  # fmt: skip
        self._label("epoch", "accuracy")

    def clear(self, n_classes: int | None = None) -> None:
        self.points: tuple[list[int], list[float]] = ([], [])
        self.chance_level = 1.0 / n_classes if n_classes else math.nan
        self.refresh()

    def add(self, epoch: int, accuracy: float) -> None:
        """Record the accuracy after ``epoch`` (once per epoch; NaN is ignored)."""
        if math.isfinite(accuracy) and epoch not in self.points[0]:
            self.points[0].append(int(epoch))
            self.points[1].append(float(accuracy))
            self.refresh()

    def redraw(self) -> None:
        self.ensure_built()
        self.line.set_data(*self.points)
        self.chance.set_ydata([self.chance_level, self.chance_level])
        self.axes.set_xlim(0.5, max(self.points[0], default=1) + 0.5)
        self.axes.set_ylim(0, 1.02)
        self.draw_idle()


class ProbabilityBars(_Canvas):
    """One horizontal bar per class; the most likely class highlighted and labelled with its percentage."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, {"left": 0.26, "right": 0.9, "top": 0.97, "bottom": 0.14})
        self.set_probabilities([], [])

    def set_probabilities(self, classes: Sequence[str], probabilities: Sequence[float]) -> None:
        self.values: dict[str, float] = {str(c): float(p) for c, p in zip(classes, probabilities, strict=True)}
        self.refresh()

    def redraw(self) -> None:
        self.ensure_built()
        axes = self.axes
        axes.clear()
        axes.set_xlim(0, 1)
        axes.tick_params(colors=TEXT, labelsize=7)
        self._label("probability")
        if not self.values:
            self._placeholder("Classify a volume to see\nits class probabilities")
        else:
            names, values = list(self.values), np.array(list(self.values.values()))
            best = int(np.argmax(values))
            colors = [VAL_COLOR if i == best else TRAIN_COLOR for i in range(len(values))]
            rows = np.arange(len(values))
            axes.barh(rows, values, color=colors, height=0.7)
            axes.set_yticks(rows, names)
            axes.invert_yaxis()
            for row, value in zip(rows, values, strict=True):
                axes.text(min(value + 0.02, 0.98), row, f"{value:.0%}", va="center", fontsize=7, color=TEXT,
                          ha="left" if value < 0.85 else "right")  # fmt: skip
        self.draw_idle()


class ConfusionPlot(_Canvas):
    """Counts of true (rows) against predicted (columns) classes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, {"left": 0.24, "right": 0.97, "top": 0.91, "bottom": 0.26})
        self.setMinimumHeight(260)
        self.set_confusion([], None)

    def set_confusion(self, classes: Sequence[str], confusion: Sequence[Sequence[int]] | None, title: str = "") -> None:
        self.classes = [str(c) for c in classes]
        self.matrix: np.ndarray | None = None if confusion is None else np.asarray(confusion, dtype=np.int64)
        self.title = title
        self.refresh()

    def redraw(self) -> None:
        self.ensure_built()
        axes = self.axes
        axes.clear()
        axes.tick_params(colors=TEXT, labelsize=7)
        if self.matrix is None:
            axes.set_xticks([])
            self._placeholder("Evaluate a model on a data set\nto see its confusion matrix")
            self.draw_idle()
            return
        matrix, classes, ticks = self.matrix, self.classes, np.arange(len(self.classes))
        axes.imshow(matrix, cmap="viridis", vmin=0, vmax=max(int(matrix.max()), 1), interpolation="nearest")
        axes.set_xticks(ticks, classes, rotation=60, ha="right", rotation_mode="anchor")
        axes.set_yticks(ticks, classes)
        self._label("predicted", "true")
        axes.set_title(self.title, color=TEXT, fontsize=8)
        threshold = matrix.max() / 2
        size = 7 if len(classes) <= 10 else 5
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                axes.text(col, row, str(count), ha="center", va="center", fontsize=size,
                          color="#111111" if count > threshold else "#e6edf3")  # fmt: skip
        self.draw_idle()
