"""Time left for any job that reports a fraction done: a linear estimate from the first fraction seen.

Counting from the first report (not from the job's start) leaves out loading a model or a framework, which would
otherwise make the first estimates far too long.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MIN_ELAPSED_S = 1.0
"""No estimate before this much time has passed since the first fraction (the first tiles include warm-up)."""


class EtaClock:
    """Feed it fractions done (0..1); :meth:`update` returns the seconds left, NaN while unknown."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self._start: tuple[float, float] | None = None  # (time, fraction) of the first report
        self._last = -1.0

    def update(self, fraction: float | None) -> float:
        """Seconds left after ``fraction`` was reached now (a fraction lower than the last starts afresh)."""
        if fraction is None:
            return math.nan
        now = self._clock()
        if self._start is None or fraction < self._last:
            self._start, self._last = (now, fraction), fraction
            return math.nan
        self._last = fraction
        started, first = self._start
        elapsed = now - started
        if elapsed < MIN_ELAPSED_S or fraction <= first:
            return math.nan
        return max(elapsed / (fraction - first) * (1.0 - fraction), 0.0)
