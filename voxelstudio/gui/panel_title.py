"""A 3-D panel's title: the role in bold, then the details, shortened in the middle to the width there is."""

from __future__ import annotations

import html

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedTitle(QLabel):
    """A panel title: the role in bold, then the details, shortened in the middle ("…") to the width there is;
    the tooltip and :meth:`text` give the whole title. It never asks for more width than the role needs, so long
    file names cannot widen the window."""

    MARGIN = 16  # the style sheet's padding and a little air
    MIN_HEAD = 60  # a longer role name ("Residual (predicted − target)") is shortened too

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.RichText)
        self._head, self._tail = "", ""

    def set_title(self, head: str, tail: str = "") -> None:
        self._head, self._tail = head, tail
        self.setToolTip(self.text() if tail else "")
        self._elide()

    def text(self) -> str:  # type: ignore[override]
        """The whole title as plain text (what is shown may be shortened)."""
        return f"{self._head}  {self._tail}" if self._tail else self._head

    def shown_text(self) -> str:
        """The title as drawn now (rich text)."""
        return super().text()

    def _head_width(self) -> int:
        return self._bold_metrics().horizontalAdvance(self._head)

    def _bold_metrics(self) -> QFontMetrics:
        font = QFont(self.font())
        font.setBold(True)
        return QFontMetrics(font)

    def _elide(self) -> None:
        head_room = self.width() - self.MARGIN
        head = (
            f"<b>{html.escape(self._bold_metrics().elidedText(self._head, Qt.TextElideMode.ElideRight, head_room))}</b>"
        )
        if not self._tail:
            self.setText(head)
            return
        metrics = self.fontMetrics()
        room = head_room - self._head_width() - metrics.horizontalAdvance("  ")
        tail = metrics.elidedText(self._tail, Qt.TextElideMode.ElideMiddle, max(room, 0))
        self.setText(f"{head}&nbsp;&nbsp;{html.escape(tail)}" if tail else head)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def minimumSizeHint(self) -> QSize:
        return QSize(min(self._head_width(), self.MIN_HEAD) + self.MARGIN, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        return self.minimumSizeHint()
