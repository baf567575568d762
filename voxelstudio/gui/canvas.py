"""A matplotlib Qt canvas that neither builds nor draws its figure while it is hidden.

matplotlib's ``draw_idle`` draws on the next turn of the event loop whether or not the canvas can be seen; a figure
draw costs tens of milliseconds (the first one, which lays out text, far more), and creating axes with their ticks
about ten. Canvases in background tabs would slow the start-up and stall the event loop for nothing. A
:class:`QuietCanvas` never draws while hidden. Subclasses that override :meth:`QuietCanvas.build` also create their
artists only when first shown and bring them up to date from plain data attributes (:meth:`QuietCanvas.redraw`) only
while visible: their data methods change the attributes and call :meth:`QuietCanvas.refresh`.

Visible canvases draw one per turn of the event loop (:class:`DrawQueue`): matplotlib's own ``draw_idle`` gives
every canvas a zero timer, and the canvases a training epoch touches (loss, quality, a slice panel) then drew in one
go, a stall of their summed draws (about 100 ms here) in which the window could not repaint or take input. A canvas
just shown waits :data:`SHOWN_DRAW_DELAY_MS` for its draw: the first click on Train used to paint the tab and draw
the loss plot in one turn (95-137 ms); now 76-79 ms (benchmarks/gui_latency.py).
"""

from __future__ import annotations

import shiboken6
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QShowEvent

SHOWN_DRAW_DELAY_MS = 60
"""A canvas just shown draws this long after it asked, not in the turn of the event loop that paints what was shown
with it (a tab's first paint takes tens of milliseconds under a software renderer): the window takes input between
the two."""


class DrawQueue:
    """Canvases waiting to draw, drawn one per turn of the event loop in the order they asked."""

    def __init__(self) -> None:
        self._pending: dict[int, QuietCanvas] = {}
        self._timer: QTimer | None = None

    @property
    def waiting(self) -> bool:
        """Whether a canvas waits for its draw."""
        return bool(self._pending)

    def add(self, canvas: QuietCanvas, delay_ms: int = 0) -> None:
        """Draw ``canvas`` in a later turn (not before ``delay_ms`` when no draw is waiting already)."""
        self._pending.setdefault(id(canvas), canvas)
        if self._timer is None:  # created on first use: the QApplication exists by then
            self._timer = QTimer(singleShot=True)
            self._timer.timeout.connect(self._draw_next)
        if not self._timer.isActive():
            self._timer.start(delay_ms)

    def _draw_next(self) -> None:
        key = next(iter(self._pending), None)
        if key is not None:
            canvas = self._pending.pop(key)
            if not shiboken6.isValid(canvas):
                pass  # deleted while waiting
            elif not canvas.isVisible():
                canvas.draw_idle()  # hidden while waiting (a tab switch): marks itself to draw when shown again
            elif canvas.width() > 0 and canvas.height() > 0:
                canvas.draw()
        if self._pending:
            self._timer.start(0)


DRAWS = DrawQueue()


class QuietCanvas(FigureCanvasQTAgg):
    """``FigureCanvasQTAgg`` that builds its artists on first show and whose ``draw_idle`` waits until visible."""

    _stale_while_hidden = False
    _built = False
    _just_shown = False

    def build(self) -> None:
        """Create the figure's axes and artists (once, just before they are first needed)."""

    def redraw(self) -> None:
        """Bring the artists up to date with the data and schedule a draw (overrides call ``ensure_built`` first)."""
        self.ensure_built()
        self.draw_idle()

    def ensure_built(self) -> None:
        if not self._built:
            self._built = True
            self.build()

    def refresh(self) -> None:
        """The data changed: redraw now if the canvas can be seen, else when it is next shown."""
        if self.isVisible():
            self.redraw()
        else:
            self._stale_while_hidden = True

    def draw_idle(self) -> None:
        if self.isVisible():
            DRAWS.add(self, SHOWN_DRAW_DELAY_MS if self._just_shown else 0)
        else:
            self._stale_while_hidden = True

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale_while_hidden or not self._built:
            self._stale_while_hidden, self._just_shown = False, True
            try:
                self.redraw()
            finally:
                self._just_shown = False
