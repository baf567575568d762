"""A matplotlib Qt canvas that does not draw while it is hidden.

matplotlib's ``draw_idle`` draws on the next turn of the event loop whether or not the canvas can be seen; a figure
draw costs tens of milliseconds (the first one, which lays out text, far more). Canvases in background tabs or in a
hidden panel therefore slow the start-up and stall the event loop for nothing. This one remembers that it is out of
date and draws when it is shown.
"""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from PySide6.QtGui import QShowEvent


class QuietCanvas(FigureCanvasQTAgg):
    """``FigureCanvasQTAgg`` whose ``draw_idle`` waits until the canvas is visible."""

    _stale_while_hidden = False

    def draw_idle(self) -> None:
        if self.isVisible():
            super().draw_idle()
        else:
            self._stale_while_hidden = True

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale_while_hidden:
            self._stale_while_hidden = False
            super().draw_idle()
