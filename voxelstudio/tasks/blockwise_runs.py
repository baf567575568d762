"""What a resumable block-wise run keeps on disk, and how a later run recognises it.

A run writes into a hidden temporary store beside its output (``.<name>.<job id>.partial``) holding a run record
(:data:`RUN`: the input's fingerprint, the model, the block shape and the normalisation range), one marker file per
finished block in :data:`DONE`, and, with test-time augmentation, the uncertainty store marked with its job id.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.atomic import RESUMABLE
from voxelstudio.io import zarr_

DONE = ".voxelstudio-done"
RUN = RESUMABLE
JOB_ATTRIBUTE = "voxelstudio_job"
"""Attribute of an uncertainty store naming the block-wise job that wrote it (what --resume may replace)."""


def marker(start: Sequence[int]) -> str:
    return "_".join(str(int(a)) for a in start)


def other_runs(out: Path, temporary: Path) -> list[Path]:
    """Interrupted block-wise runs into ``out`` with other settings than the one at ``temporary``."""
    return sorted(
        p for p in out.parent.glob(f".{glob.escape(out.name)}.*.partial") if p != temporary and (p / RUN).is_file()
    )


def input_fingerprint(source: Path, lazy: zarr_.LazyVolume) -> str:
    """Changes when the input store is written again, even with the same shape: its metadata files' sizes and times
    and the values of its first chunk (a resumed run must not mix blocks of the old data with the new)."""
    digest = hashlib.sha256()
    for folder in dict.fromkeys((source, source / str(lazy.array.path or ""))):
        for name in (".zgroup", ".zattrs", ".zarray", "zarr.json"):
            path = folder / name
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(source)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    first = tuple(slice(0, c) for c in lazy.array.chunks)
    digest.update(np.ascontiguousarray(lazy.array[first]).tobytes())
    return digest.hexdigest()[:16]


def resumable_run(run_file: Path) -> dict[str, Any] | None:
    """The record of an interrupted run to resume (``"complete"``: every block was done and only publishing was
    left), or None when there is none or it cannot be read."""
    try:
        run = json.loads(run_file.read_text(encoding="utf-8"))
        float(run["value_range"][0]), float(run["value_range"][1])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return run


def mark_published_by(store: Path, job_id: str) -> None:
    import zarr

    zarr.open_group(str(store), mode="r+").attrs[JOB_ATTRIBUTE] = job_id


def published_by(store: Path, job_id: str) -> bool:
    """Whether ``store`` is the uncertainty an interrupted run of this very job published (then --resume may
    replace it: the run ended before its output was published)."""
    import zarr

    try:
        return zarr.open_group(str(store), mode="r").attrs.get(JOB_ATTRIBUTE) == job_id
    except Exception:  # not a Zarr group, unreadable: not this job's
        return False
