"""A panel's colorbar: its colormap from the lower to the upper contrast limit, with the limits written at the ends.

One per panel column, between the 3-D view and the slice views, which both draw with this colormap and these limits.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from voxelstudio.render.colormaps import colormap_rgb, split_name
from voxelstudio.render.transfer import Clim

TEXT_COLOR = QColor("#d8dee9")


def limit_text(value: float) -> str:
    """A contrast limit as the colorbar writes it: four significant digits."""
    return f"{value:.4g}"


class Colorbar(QWidget):
    """The colormap ``cmap`` (a name; ``_r``: inverted) between ``clim``; shows nothing until :meth:`set_scale`."""

    HEIGHT = 18
    LABEL_GAP = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.HEIGHT)
        self.cmap: str | None = None
        self.clim: Clim | None = None
        self._strip: QImage | None = None

    def set_scale(self, cmap: str, clim: Clim) -> None:
        """Show ``cmap`` from ``clim[0]`` to ``clim[1]``."""
        if (cmap, clim) == (self.cmap, self.clim):
            return
        if cmap != self.cmap:
            rgb = np.ascontiguousarray(colormap_rgb(cmap)[np.newaxis])  # 1 x 256 x 3
            self._strip = QImage(rgb.data, rgb.shape[1], 1, rgb.shape[1] * 3, QImage.Format.Format_RGB888).copy()
        self.cmap, self.clim = cmap, (float(clim[0]), float(clim[1]))
        name, inverted = split_name(cmap)
        self.setToolTip(
            f"Colormap {name}{' (inverted)' if inverted else ''}: {self.labels()[0]} to {self.labels()[1]}; "
            "the 3-D view and the slices below use the same colours and limits"
        )
        self.update()

    def clear(self) -> None:
        """No volume: show nothing."""
        self.cmap, self.clim, self._strip = None, None, None
        self.setToolTip("")
        self.update()

    def labels(self) -> tuple[str, str]:
        """The texts at the low and the high end ("" when nothing is shown)."""
        if self.clim is None:
            return ("", "")
        return (limit_text(self.clim[0]), limit_text(self.clim[1]))

    def strip_rect(self) -> QRect:
        """Where the colour strip is drawn, between the two limits' texts."""
        metrics = self.fontMetrics()
        low, high = self.labels()
        left = metrics.horizontalAdvance(low) + 2 * self.LABEL_GAP
        right = metrics.horizontalAdvance(high) + 2 * self.LABEL_GAP
        return QRect(left, 3, max(self.width() - left - right, 1), self.height() - 6)

    def paintEvent(self, event: QPaintEvent) -> None:
        if self._strip is None or self.clim is None:
            return
        painter = QPainter(self)
        strip = self.strip_rect()
        painter.drawImage(strip, self._strip)
        painter.setPen(TEXT_COLOR)
        low, high = self.labels()
        centred = Qt.AlignmentFlag.AlignVCenter
        painter.drawText(
            QRect(self.LABEL_GAP, 0, strip.left() - self.LABEL_GAP, self.height()),
            centred | Qt.AlignmentFlag.AlignLeft,
            low,
        )
        painter.drawText(
            QRect(strip.right() + 1 + self.LABEL_GAP, 0, self.width(), self.height()),
            centred | Qt.AlignmentFlag.AlignLeft,
            high,
        )
        painter.end()

    def sizeHint(self) -> QSize:
        return QSize(60, self.HEIGHT)

    def minimumSizeHint(self) -> QSize:
        return QSize(20, self.HEIGHT)
