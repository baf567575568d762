"""Long commands: a tqdm progress bar behind the task ``report`` callback (the same progress the GUI shows), and
Ctrl-C as a clean stop (exit status :data:`EXIT_INTERRUPTED`)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from voxelstudio.core.progress import CancelToken, Progress, ReportFn

EXIT_INTERRUPTED = 130
"""Exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it)."""


@contextmanager
def tqdm_report(description: str, *, quiet: bool = False) -> Iterator[ReportFn]:
    """Yield a ``report`` callback that drives one tqdm bar on stderr, shown from the first report on (a command
    that fails before reporting prints its error line alone)."""
    if quiet:
        yield lambda progress: None
        return
    from tqdm import tqdm

    bars: list[Any] = []

    def report(progress: Progress) -> None:
        if not bars:  # made with the first report's numbers: tqdm draws at once, and "0it" would stand above
            label = f"{description}: {progress.message}" if progress.message else description
            initial = progress.done or 0
            bar = tqdm(desc=label, total=progress.total, initial=initial, file=sys.stderr, dynamic_ncols=True)
            bars.append(bar)
        bar = bars[0]
        if progress.total is not None and bar.total != progress.total:
            bar.total = progress.total
        if progress.done is not None:  # None: a stage with no count of its own; the bar stays where it is
            bar.n = progress.done
        postfix = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in progress.values.items()}
        if progress.message:
            bar.set_description_str(f"{description}: {progress.message}", refresh=False)
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    try:
        yield report
    finally:
        for bar in bars:
            bar.close()


@contextmanager
def cancel_on_interrupt() -> Iterator[CancelToken]:
    """A token the first Ctrl-C sets (the task stops cleanly); a second Ctrl-C interrupts at once."""
    token = CancelToken()
    previous = signal.getsignal(signal.SIGINT)

    def handle(signum: int, frame: Any) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("\nvoxelstudio: stopping after the current step (Ctrl-C again to abort)", file=sys.stderr)

    signal.signal(signal.SIGINT, handle)
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, previous)
