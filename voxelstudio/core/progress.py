"""Progress reporting and cooperative cancellation shared by the CLI (tqdm) and the GUI (signals).

A long task is a plain function ``task(..., report=..., cancel=...)``. It calls ``report(Progress(...))`` now and
then and checks ``cancel`` between units of work. Neither side knows about Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voxelstudio.core.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress update: ``done`` of ``total`` units, a short message and task-specific values."""

    done: float
    total: float | None = None
    message: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """Completed fraction in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)


ReportFn = Callable[[Progress], None]


def null_report(progress: Progress) -> None:
    """A report callback that ignores everything."""


class CancelToken:
    """Thread-safe flag that a long task polls between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the task to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self, what: str = "job") -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled(what)
