"""A tqdm progress bar behind the task ``report`` callback, so the CLI shows the same progress as the GUI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from voxelstudio.core.progress import Progress, ReportFn


@contextmanager
def tqdm_report(description: str, *, quiet: bool = False) -> Iterator[ReportFn]:
    """Yield a ``report`` callback that drives one tqdm bar on stderr."""
    if quiet:
        yield lambda progress: None
        return
    from tqdm import tqdm

    bar = tqdm(desc=description, total=None, file=sys.stderr, leave=True, dynamic_ncols=True)

    def report(progress: Progress) -> None:
        if progress.total is not None and bar.total != progress.total:
            bar.total = progress.total
        bar.n = progress.done
        postfix = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in progress.values.items()}
        if progress.message:
            bar.set_description_str(f"{description}: {progress.message}", refresh=False)
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    try:
        yield report
    finally:
        bar.close()
