"""A cache of Gibson-Lanni PSFs keyed by optics rounded to a grid, for simulating many patches quickly.

Drawing optics at random (``OpticsParams.random``) gives a new microscope every time, so an exact-optics cache would
never hit. :func:`round_optics` snaps each parameter to a grid fine enough that neighbouring cells give practically the
same PSF (0.01 in NA, 5 nm in wavelength, 0.005 in refractive index, 0.1 µm in depth, 5 nm in voxel size), and
:class:`PsfCache` stores the PSF *of the rounded optics*: whatever was asked first, a key always maps to the same
array, so results do not depend on the cache's history. Least-recently used entries are dropped beyond
``max_bytes``; ``hits`` and ``misses`` count look-ups. With a ``directory``, PSFs are also written there as ``.npy``
files (atomically) and read back on a memory miss, so the worker processes of one run share each integral
(``disk_hits``) instead of each computing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.sim.params import OpticsParams, validate_shape
from voxelstudio.sim.psf import make_psf

OPTICS_GRID: dict[str, float] = {
    "na": 0.01,
    "wavelength_um": 0.005,
    "ni": 0.005,
    "ns": 0.005,
    "ng": 0.001,
    "tg_um": 0.5,
    "depth_um": 0.1,
    "pixel_um": 0.005,
    "z_step_um": 0.005,
}
"""Grid step of every optics parameter for :func:`round_optics`."""

DEFAULT_MAX_BYTES = 2 * 2**30
"""Default memory budget of one cache (per process): a pool of 256 microscopes' PSFs and FFTs for 96x96x32 volumes
takes about 1.5 GiB."""


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, tuple):
        return sum(_nbytes(v) for v in value)
    return 64


def _snap(value: float, step: float, low: float, high: float) -> float:
    snapped = round(round(value / step) * step, 10)
    return float(min(max(snapped, low), high))


def round_optics(optics: OpticsParams, grid: dict[str, float] | None = None) -> OpticsParams:
    """``optics`` with every parameter snapped to ``grid`` (default :data:`OPTICS_GRID`), kept in its range and
    with NA below the immersion index."""
    grid = OPTICS_GRID if grid is None else grid
    ranges = OpticsParams.ranges()
    values = optics.to_dict()
    for name, step in grid.items():
        values[name] = _snap(values[name], step, *ranges[name])
    step = grid.get("na", 0.01)
    while values["na"] >= values["ni"]:
        values["na"] = round(values["na"] - step, 10)
    return OpticsParams(**values)


@dataclass(frozen=True)
class CacheStats:
    """Look-up counts of a :class:`PsfCache`."""

    hits: int
    misses: int
    entries: int
    bytes: int
    disk_hits: int = 0

    @property
    def hit_rate(self) -> float:
        """Share of look-ups that computed no Gibson-Lanni integral (memory or disk hits)."""
        total = self.hits + self.disk_hits + self.misses
        return (self.hits + self.disk_hits) / total if total else 0.0


class PsfCache:
    """PSFs (``make_psf`` of the rounded optics) by (rounded optics, PSF shape), least recently used dropped first.

    Not thread-safe on its own; each simulation worker process keeps one.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, grid: dict[str, float] | None = None, directory: str | None = None
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.grid = OPTICS_GRID if grid is None else dict(grid)
        self.directory = None if directory is None else Path(directory)
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0
        self._entries: OrderedDict[Any, Any] = OrderedDict()
        self._bytes = 0

    def rounded(self, optics: OpticsParams) -> OpticsParams:
        """The optics this cache computes PSFs for when asked for ``optics``."""
        return round_optics(optics, self.grid)

    def psf(self, optics: OpticsParams, shape: tuple[int, int, int]) -> np.ndarray:
        """The (read-only) PSF of ``rounded(optics)`` sampled at its voxel size on a grid of ``shape``."""
        rounded = self.rounded(optics)
        key = (rounded, validate_shape(shape, "PSF shape"))
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found
        psf = self._from_disk(key)
        if psf is None:
            self.misses += 1
            psf = make_psf(rounded, key[1])
            self._to_disk(key, psf)
        else:
            self.disk_hits += 1
        self._store(key, psf)
        return psf

    def _file(self, key: tuple[OpticsParams, tuple[int, int, int]]) -> Path | None:
        if self.directory is None:
            return None
        text = json.dumps([sorted(key[0].to_dict().items()), list(key[1])])
        return self.directory / f"psf-{hashlib.sha1(text.encode()).hexdigest()[:20]}.npy"

    def _from_disk(self, key: tuple[OpticsParams, tuple[int, int, int]]) -> np.ndarray | None:
        path = self._file(key)
        if path is None or not path.exists():
            return None
        try:
            psf = np.load(path)
        except (OSError, ValueError):
            return None  # half-written by a sibling that died, or unreadable: compute it again
        if psf.shape != key[1] or psf.dtype != np.float32:
            return None
        psf.flags.writeable = False
        return psf  # type: ignore[no-any-return]

    def _to_disk(self, key: tuple[OpticsParams, tuple[int, int, int]], psf: np.ndarray) -> None:
        path = self._file(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
        np.save(temporary, psf)
        os.replace(temporary, path)

    def derived(self, name: str, optics: OpticsParams, shape: tuple[int, int, int], extra: Any, compute: Any) -> Any:
        """``compute(psf)`` for the PSF of (``optics``, ``shape``), remembered under (``name``, ``extra``) in the same
        memory budget (e.g. the PSF's Fourier transform for one volume shape). Counted as a PSF hit or miss."""
        key = (name, self.rounded(optics), validate_shape(shape, "PSF shape"), extra)
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found
        value = compute(self.psf(optics, shape))
        self._store(key, value)
        return value

    def _store(self, key: Any, value: Any) -> None:
        self._entries[key] = value
        self._bytes += _nbytes(value)
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= _nbytes(dropped)

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, len(self._entries), self._bytes, self.disk_hits)

    def clear(self) -> None:
        """Drop every entry and reset the counts."""
        self._entries.clear()
        self._bytes = 0
        self.hits = self.misses = self.disk_hits = 0
