"""Full-resolution slice planes for a volume shown at a coarse level of a multiscale OME-Zarr store.

The 3-D view draws the coarse level; a single plane of the finest level is small, so the slice views show the
planes through the cursor read from level 0, off the GUI thread (``Controller.read_planes``, a non-exclusive job),
and show the coarse planes until they arrive. One read runs at a time; while it runs only the latest wish per panel
is kept, and a few recent results are cached so that going back to a slice is immediate.

Coordinates: the views keep the coarse level's frame (voxel ``i`` centred at ``i * coarse spacing``); coarse voxel
``i`` covers finest voxels ``i*f .. i*f+f-1`` (``f`` the level's factor on that axis), the plane read is the middle
one of those (``floor(i*f + (f-1)/2)``), and the fine image spans the same physical extent as the coarse one, starting
at the coarse first voxel's edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from voxelstudio.core.volume import Volume
from voxelstudio.gui.levels import is_coarse_level
from voxelstudio.render.slices import level_factor, plane_extents, rescale_index

Index = tuple[int, int, int]
Extent = tuple[float, float, float, float]
CACHED = 8


@dataclass(frozen=True)
class PlaneRequest:
    """The planes through ``index`` (a voxel of the finest level ``level`` of the store ``source``) for a panel
    showing a coarser level of voxel size ``coarse_spacing``."""

    source: Path
    level: str
    index: Index
    coarse_spacing: tuple[float, float, float]
    fine_shape: Index
    fine_spacing: tuple[float, float, float]


def plane_request(volume: Volume | None, cursor: Index) -> PlaneRequest | None:
    """What to read for ``volume`` at the (coarse) ``cursor``; None unless it is a coarse level of a store."""
    if volume is None or volume.source is None or not is_coarse_level(volume):
        return None
    fine = volume.metadata["levels"][0]
    # the reduction from the shapes, not the voxel sizes: those may be unknown (all 1) or set by the user
    factors = [level_factor(c, n) for c, n in zip(volume.shape, fine.shape, strict=True)]
    index = rescale_index(cursor, volume.shape, fine.shape)
    spacing = tuple(float(s) for s in volume.spacing)
    fine_spacing = tuple(s / f for s, f in zip(spacing, factors, strict=True))
    return PlaneRequest(Path(volume.source), fine.path, index, spacing, fine.shape, fine_spacing)  # type: ignore[arg-type]


def fine_extents(request: PlaneRequest) -> dict[str, Extent]:
    """imshow extents of the fine planes in the coarse level's frame (see the module notes)."""
    extents = plane_extents(request.fine_shape, request.fine_spacing)
    dy, dx, dz = (0.5 * (f - c) for f, c in zip(request.fine_spacing, request.coarse_spacing, strict=True))
    shifts = {"xy": (dx, dy), "xz": (dx, dz), "yz": (dz, dy)}
    return {
        plane: (left + du, right + du, bottom + dv, top + dv)
        for plane, (left, right, bottom, top) in extents.items()
        for du, dv in (shifts[plane],)
    }


Planes = dict[str, Any]
ReadFn = Callable[[PlaneRequest, Callable[[Planes | None], object]], object]
ApplyFn = Callable[[str, PlaneRequest, Planes], object]


class FinePlanes(QObject):
    """Reads the wanted planes one request at a time with ``read(request, on_done)`` and hands each result to
    ``apply(panel role, request, planes)`` for the panels that still want it."""

    def __init__(self, read: ReadFn, apply: ApplyFn, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._read, self._apply = read, apply
        self._wanted: dict[str, PlaneRequest] = {}
        self._cache: dict[PlaneRequest, Planes | None] = {}  # None: could not be read, not asked again
        self._reading: PlaneRequest | None = None

    def want(self, panel_role: str, request: PlaneRequest | None) -> None:
        """``panel_role`` now shows the coarse planes of ``request`` (None: nothing to read for it)."""
        if request is None:
            self._wanted.pop(panel_role, None)
            return
        self._wanted[panel_role] = request
        if request in self._cache:
            planes = self._cache[request]
            if planes is not None:
                self._apply(panel_role, request, planes)
            return
        self._next()

    def _next(self) -> None:
        if self._reading is not None:
            return
        request = next((r for r in self._wanted.values() if r not in self._cache), None)
        if request is None:
            return
        self._reading = request
        if self._read(request, lambda planes: self._done(request, planes)) is None:
            self._reading = None  # not started (the window is closing)

    def _done(self, request: PlaneRequest, planes: Planes | None) -> None:
        if self._reading != request:
            return  # a second call for the same read (its result, then its end)
        self._reading = None
        self._cache[request] = planes
        while len(self._cache) > CACHED:
            self._cache.pop(next(iter(self._cache)))
        if planes is not None:
            for panel_role, wanted in list(self._wanted.items()):
                if wanted == request:
                    self._apply(panel_role, request, planes)
        self._next()
