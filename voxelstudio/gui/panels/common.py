"""Pieces shared by the panels: a progress row with a stop button and the time left, and readable numbers and
durations."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from voxelstudio.jobs.eta import EtaClock
from voxelstudio.jobs.events import ProgressEvent, TileProgress


class ElidedLabel(QLabel):
    """One line of text shortened in the middle ("…") to the width there is; :meth:`text` is the whole text.

    Used instead of a word-wrapped label beside buttons: Qt 6.12 crashes laying such a label out inside a tab's
    scroll area (QTextEngine::resolveFormats from QLabel::heightForWidth)."""

    def __init__(self, text: str = "", parent: QWidget | None = None, **kwargs: object) -> None:
        super().__init__(parent, **kwargs)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self._full = ""
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self._elide()

    def text(self) -> str:  # type: ignore[override]
        return self._full

    def _elide(self) -> None:
        super().setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, max(self.width(), 1)))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``; ``"–"`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_time_left(seconds: float) -> str:
    """``"~20 s left"``, ``"~3 min left"``, ``"~1 h 05 min left"``; ``""`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return ""
    if seconds < 60:
        return f"~{max(round(seconds), 1)} s left"
    minutes = round(seconds / 60)
    return f"~{minutes} min left" if minutes < 60 else f"~{minutes // 60} h {minutes % 60:02d} min left"


def describe_progress(progress: ProgressEvent) -> str:
    """Where a job is: ``"tile 3/12"`` for tiled prediction, else its message with done/total when known."""
    if isinstance(progress, TileProgress) and progress.tiles:
        return progress.describe()
    total = "" if progress.total is None else f" {progress.done:g}/{progress.total:g}"
    return f"{progress.message or 'working'}{total}"


def format_number(value: object) -> str:
    """Floats with 4 significant digits, None (not defined, not measured) as a dash, everything else as text."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def show_fraction(bar: QProgressBar, fraction: float | None) -> None:
    """Percent done on ``bar`` (busy indicator when unknown); repaints only when the percentage changes."""
    if fraction is None:
        bar.setRange(0, 0)
        return
    if bar.maximum() != 100:
        bar.setRange(0, 100)
    percent = round(fraction * 100)
    if percent != bar.value():
        bar.setValue(percent)


class ProgressRow(QWidget):
    """A progress bar, a one-line description and a Stop button for one kind of job."""

    stop_requested = Signal()

    def __init__(self, stop_text: str = "Stop", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar(self)
        self.bar.setTextVisible(True)
        self.label = QLabel("", self)
        self.label.setWordWrap(True)
        self.stop_button = QPushButton(stop_text, self)
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_requested)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.label)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.eta = EtaClock()

    def started(self, text: str) -> None:
        self.eta.reset()
        self.bar.setRange(0, 0)  # busy indicator until the first progress with a total
        self.label.setText(text)
        self.stop_button.setEnabled(True)

    def progressed(self, progress: ProgressEvent, text: str | None = None) -> None:
        show_fraction(self.bar, progress.fraction)
        self.label.setText(text if text is not None else progress.message)

    def progressed_with_eta(self, progress: ProgressEvent) -> None:
        """Show ``progress`` as :func:`describe_progress` does, with the time left estimated from its fraction."""
        left = format_time_left(self.eta.update(progress.fraction))
        text = describe_progress(progress)
        self.progressed(progress, f"{text}, {left}" if left else text)

    def ended(self, outcome: str, text: str | None = None, fraction: float | None = None) -> None:
        """Show how the job ended: ``text``, or a word for the outcome; the bar full when it finished, else at
        ``fraction`` (where a stopped job got to) or empty."""
        self.stop_button.setEnabled(False)
        if fraction is None:
            self.bar.setRange(0, 1)
            self.bar.setValue(1 if outcome == "finished" else 0)
        else:
            show_fraction(self.bar, fraction)
        words = {"finished": "Done.", "cancelled": "Stopped.", "failed": "Failed (see the message)."}
        self.label.setText(text or words.get(outcome, ""))
