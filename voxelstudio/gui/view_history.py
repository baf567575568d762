"""Undo/redo for view changes: a bounded history of :class:`ViewSnapshot` values, kept by the view state.

A snapshot holds what the user changes about how volumes look (render modes, colormaps, contrast limits, opacity,
isosurface level, scale bar, linked contrast, camera), not the data, the cursor or the fourth panel's content.
The view state records a snapshot after every change; a change that differs from the last one only in a slider
value (opacity, iso level) within :data:`COALESCE_S` replaces that step instead of adding one, so a slider drag is
one step. Changes the user did not make (limits dropped for a new volume, the camera placed for new data) move the
history's present without adding a step. Qt-free.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from voxelstudio.render import OpacityCurve
from voxelstudio.render.transfer import Clim

HISTORY_LIMIT = 100
COALESCE_S = 1.0
SLIDER_FIELDS = frozenset({"opacity", "iso_fraction"})


class CameraPose(NamedTuple):
    """Where the shared camera is: position, focal point and view-up (world µm), parallel scale and view angle."""

    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    view_up: tuple[float, float, float]
    parallel_scale: float
    view_angle: float

    def rounded(self, digits: int = 6) -> CameraPose:
        """The pose with every number rounded (VTK's arithmetic jitters the last bits)."""

        def r(values):
            return tuple(round(float(v), digits) for v in values)

        return CameraPose(
            r(self.position),
            r(self.focal_point),
            r(self.view_up),
            round(float(self.parallel_scale), digits),
            round(float(self.view_angle), digits),
        )

    def close_to(self, other: CameraPose, tolerance: float = 1e-4) -> bool:
        """Whether the two poses differ by no more than ``tolerance`` (relative to the larger magnitude) anywhere:
        a pose VTK hands back after setting it is close to, not always equal to, the one set."""
        mine = (*self.position, *self.focal_point, *self.view_up, self.parallel_scale, self.view_angle)
        theirs = (*other.position, *other.focal_point, *other.view_up, other.parallel_scale, other.view_angle)
        return all(abs(a - b) <= tolerance * max(1.0, abs(a), abs(b)) for a, b in zip(mine, theirs, strict=True))


@dataclass(frozen=True)
class ViewSnapshot:
    """One state of the view settings that undo can return to (dicts as sorted tuples, so snapshots compare)."""

    mode: str
    panel_modes: tuple[tuple[str, str], ...]
    cmap: str
    invert: bool
    panel_cmaps: tuple[tuple[str, str], ...]
    opacity: OpacityCurve
    iso_fraction: float
    show_scale_bar: bool
    link_contrast: bool
    clims: tuple[tuple[str, Clim], ...]
    camera: CameraPose | None

    def changed_fields(self, other: ViewSnapshot) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name))

    def without_clim(self, role: str) -> ViewSnapshot:
        return dataclasses.replace(self, clims=tuple(item for item in self.clims if item[0] != role))


class ViewHistory:
    """Undo and redo stacks of snapshots around the present one (at most ``limit`` steps back)."""

    def __init__(self, present: ViewSnapshot, limit: int = HISTORY_LIMIT, clock: Callable[[], float] = time.monotonic):
        self.present = present
        self._undo: deque[ViewSnapshot] = deque(maxlen=limit)
        self._redo: list[ViewSnapshot] = []
        self._clock = clock
        self._last_step: tuple[frozenset[str], float] | None = None  # fields and time of the newest step

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def record(self, snapshot: ViewSnapshot) -> None:
        """The user changed the view to ``snapshot``: a new step (unless nothing changed, or a slider moved on)."""
        fields = snapshot.changed_fields(self.present)
        if not fields:
            return
        now = self._clock()
        last = self._last_step
        same_slider = last is not None and fields == last[0] and fields <= SLIDER_FIELDS
        if same_slider and now - last[1] < COALESCE_S and self._undo:
            self.present = snapshot  # the same slider again: still one step
            self._last_step = (fields, now)
            return
        self._undo.append(self.present)
        self._redo.clear()
        self.present = snapshot
        self._last_step = (fields, now)

    def reset(self, present: ViewSnapshot) -> None:
        """Forget every step: ``present`` is where the history starts again."""
        self.present = present
        self._undo.clear()
        self._redo.clear()
        self._last_step = None

    def rebase(self, snapshot: ViewSnapshot) -> None:
        """The view changed without the user asking (new data): move the present, add no step."""
        self.present = snapshot

    def undo(self) -> ViewSnapshot | None:
        """The snapshot to go back to (None when there is none); the present goes onto the redo stack."""
        if not self._undo:
            return None
        self._redo.append(self.present)
        self.present = self._undo.pop()
        self._last_step = None
        return self.present

    def redo(self) -> ViewSnapshot | None:
        """The snapshot undone last (None when there is none)."""
        if not self._redo:
            return None
        self._undo.append(self.present)
        self.present = self._redo.pop()
        self._last_step = None
        return self.present

    def forget_clim(self, role: str) -> None:
        """A new volume arrived for ``role``: no step may bring back limits that were set for the old data."""
        self.present = self.present.without_clim(role)
        self._undo = deque((s.without_clim(role) for s in self._undo), maxlen=self._undo.maxlen)
        self._redo = [s.without_clim(role) for s in self._redo]
