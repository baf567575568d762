"""How volumes are shown: render mode, colours, contrast limits, the cursor voxel and the optional fourth panel.

The 3-D panels and the 2-D slice views both read from one ViewState, so they always agree. The render mode is
global (``mode``: "all panels") unless a panel has its own (``panel_modes``); setting the global mode clears those.
Contrast limits are explicit per role: raw in its own units; target and prediction (trained to the target's units)
share the target's limits while ``link_contrast`` is on, so the panels are directly comparable. Colormaps work
like render modes: one choice (``cmap``, ``invert``) for all panels unless a panel has its own (``panel_cmaps``).

The view state keeps its own undo history (:attr:`ViewState.history`): every change is recorded as a snapshot, and
:meth:`ViewState.undo` / :meth:`ViewState.redo` go back and forth between them.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from voxelstudio.core.volume import Volume
from voxelstudio.gui.view_history import CameraPose, ViewHistory, ViewSnapshot
from voxelstudio.render import (
    OpacityCurve,
    SceneStyle,
    auto_clim,
    centre_index,
    check_render_mode,
    clamp_index,
    symmetric_clim,
)
from voxelstudio.render.colormaps import COLORMAPS, colormap, colormap_name, split_name
from voxelstudio.render.transfer import Clim

EXTRA_PANELS = ("none", "residual", "uncertainty", "gradcam")
DIVERGING_CMAP = "RdBu_r"
HEAT_CMAP = "inferno"
STYLE_SETTINGS = (
    "mode", "cmap", "invert", "opacity", "iso_fraction", "show_scale_bar", "link_contrast", "extra_panel"
)  # fmt: skip
__all__ = ["COLORMAPS", "EXTRA_PANELS", "CameraPose", "ViewState"]


class ViewState(QObject):
    """Shared display settings. ``changed(aspect)`` says what changed: "style", "contrast", "cursor", "layout",
    "camera", or "mode:<panel>" when only that 3-D panel's render mode changed."""

    changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mode = "mip"
        self.panel_modes: dict[str, str] = {}
        self.cmap = "gray"
        self.invert = False
        self.panel_cmaps: dict[str, str] = {}
        self.camera: CameraPose | None = None
        self.opacity = OpacityCurve()
        self.iso_fraction = 0.5
        self.show_scale_bar = True
        self.link_contrast = True
        self.extra_panel = "none"
        self.cursor: tuple[int, int, int] | None = None
        self._manual_clims: dict[str, Clim] = {}
        self._auto_cache: dict[str, weakref.WeakKeyDictionary[Volume, Clim]] = {}
        self._recording = True
        self.history = ViewHistory(self.snapshot())

    def _changed(self, aspect: str) -> None:
        """Record the change in the history (a step, or a new present while not recording), then announce it."""
        if aspect != "cursor":
            if self._recording:
                self.history.record(self.snapshot())
            else:
                self.history.rebase(self.snapshot())
        self.changed.emit(aspect)

    @contextmanager
    def unrecorded(self) -> Iterator[None]:
        """Changes made inside are not undo steps (the program, not the user, made them)."""
        recording, self._recording = self._recording, False
        try:
            yield
        finally:
            self._recording = recording

    # ------------------------------------------------------------------------------------------------------ style
    def update(self, **changes: Any) -> None:
        """Set some of :data:`STYLE_SETTINGS`; emits one ``changed``. A new ``mode``, ``cmap`` or ``invert``
        applies to all panels (their own choices go)."""
        unknown = [name for name in changes if name not in STYLE_SETTINGS]
        if unknown:
            raise AttributeError(f"ViewState has no setting {unknown[0]!r}")
        if "mode" in changes:
            check_render_mode(changes["mode"])
            self.panel_modes.clear()
        if "extra_panel" in changes and changes["extra_panel"] not in EXTRA_PANELS:
            raise ValueError(f"unknown extra panel {changes['extra_panel']!r}")
        if "cmap" in changes:
            colormap(changes["cmap"])  # ValueError for an unknown name
        if "cmap" in changes or "invert" in changes:
            self.panel_cmaps.clear()
        for name, value in changes.items():
            setattr(self, name, value)
        self._changed("layout" if "extra_panel" in changes else "style")

    def mode_for(self, panel: str) -> str:
        """The render mode of one 3-D panel: its own, else the global one."""
        return self.panel_modes.get(panel, self.mode)

    def set_panel_mode(self, panel: str, mode: str | None) -> None:
        """Give one panel its own render mode (None: follow the global mode); emits ``changed("mode:<panel>")``."""
        if mode is not None:
            check_render_mode(mode)
        if mode is None or mode == self.mode:
            changed = self.panel_modes.pop(panel, None) is not None
        else:
            changed = self.panel_modes.get(panel) != mode
            self.panel_modes[panel] = mode
        if changed:
            self._changed(f"mode:{panel}")

    def modes_in_use(self, panels) -> set[str]:
        """The render modes the given panels use (to enable only the controls that matter)."""
        return {self.mode_for(panel) for panel in panels}

    def scene_style(
        self, role: str, volume: Volume, volumes: dict[str, Volume], panel: str | None = None, *, draft: bool = False
    ) -> SceneStyle:
        """The style for drawing ``volume`` (the ``role`` data) in ``panel`` (default: the panel named ``role``);
        ``draft`` for coarse, cheap ray casting of data that is replaced again soon."""
        cursor = clamp_index(self.cursor or centre_index(volume.shape), volume.shape)
        return SceneStyle(
            mode=self.mode_for(panel or role),
            cmap=self.cmap_for(role, panel or role),
            clim=self.clim_for(role, volume, volumes),
            opacity=self.opacity,
            iso_fraction=self.iso_fraction,
            slice_index=cursor,
            show_scale_bar=self.show_scale_bar,
            draft=draft,
            signed=role == "residual",
        )

    # -------------------------------------------------------------------------------------------------- colormaps
    def cmap_for(self, role: str, panel: str | None = None) -> str:
        """The colormap name (``_r``: inverted) for ``role`` data in ``panel`` (default: the panel named ``role``):
        the panel's own, else the shared choice; the residual and Grad-CAM keep their diverging and heat maps unless
        their panel has its own."""
        own = self.panel_cmaps.get(panel or role)
        if own is not None:
            return own
        special = {"residual": DIVERGING_CMAP, "gradcam": HEAT_CMAP}.get(role)
        return special or colormap_name(self.cmap, self.invert)

    def panel_colormap(self, panel: str) -> tuple[str, bool]:
        """``(name, inverted)`` of the colormap choice that applies to ``panel`` (its own, else the shared one)."""
        own = self.panel_cmaps.get(panel)
        return split_name(own) if own is not None else (self.cmap, self.invert)

    def set_panel_cmap(self, panel: str, name: str | None, invert: bool = False) -> None:
        """Give one panel its own colormap (None: follow the shared choice again); emits ``changed("style")``."""
        if name is None:
            changed = self.panel_cmaps.pop(panel, None) is not None
        else:
            full = colormap_name(name, invert)
            colormap(full)  # ValueError for an unknown name
            changed = self.panel_cmaps.get(panel) != full
            self.panel_cmaps[panel] = full
        if changed:
            self._changed("style")

    # --------------------------------------------------------------------------------------------------- contrast
    def contrast_role(self, role: str) -> str:
        """The role whose limits ``role`` uses (prediction follows the target while contrast is linked)."""
        return "target" if role == "prediction" and self.link_contrast else role

    def clim_for(self, role: str, volume: Volume, volumes: dict[str, Volume]) -> Clim:
        """Explicit limits: a manual setting, else automatic percentiles of the volume the role follows."""
        source_role = self.contrast_role(role)
        source = volumes.get(source_role, volume) if source_role != role else volume
        if source_role in self._manual_clims:
            return self._manual_clims[source_role]
        return self.auto_clim_of(source_role, source)

    def auto_clim_of(self, role: str, volume: Volume) -> Clim:
        """Percentile limits of ``volume`` (symmetric for the residual), computed once per volume."""
        cache = self._auto_cache.setdefault(role, weakref.WeakKeyDictionary())
        if volume not in cache:
            cache[volume] = symmetric_clim(volume.data) if role == "residual" else auto_clim(volume.data)
        return cache[volume]

    def set_clim(self, role: str, clim: Clim | None) -> None:
        """Fix the limits of ``role`` (and of the roles that follow it); None returns to automatic limits."""
        role = self.contrast_role(role)
        if clim is None:
            self._manual_clims.pop(role, None)
        else:
            low, high = float(clim[0]), float(clim[1])
            if not (np.isfinite(low) and np.isfinite(high) and high > low):
                raise ValueError(f"contrast limits must be finite and increasing, got {clim}")
            self._manual_clims[role] = (low, high)
        self._changed("contrast")

    def forget_role(self, role: str) -> None:
        """A new volume arrived for ``role``: drop its manual limits (they were set for other data), here and in
        the undo history; not an undo step."""
        self.history.forget_clim(role)
        if self._manual_clims.pop(role, None) is not None:
            with self.unrecorded():
                self._changed("contrast")

    # ----------------------------------------------------------------------------------------------------- cursor
    def set_cursor(self, index_yxz: tuple[int, int, int] | None) -> None:
        """The voxel the slice views and the slice-plane render mode go through."""
        index = None if index_yxz is None else tuple(int(i) for i in index_yxz)
        if index != self.cursor:
            self.cursor = index  # type: ignore[assignment]
            self._changed("cursor")

    def with_opacity(self, **changes: float) -> None:
        """Change one parameter of the composite-rendering opacity curve."""
        self.update(opacity=dataclasses.replace(self.opacity, **changes))

    # ----------------------------------------------------------------------------------------------------- camera
    def set_camera(self, pose: CameraPose | None, *, record: bool = True) -> None:
        """Where the shared camera is (the 3-D panels report it after it moved); ``record=False`` when the program
        placed it (new data), so undo does not stop there."""
        pose = None if pose is None else pose.rounded()
        if pose == self.camera:
            return
        self.camera = pose
        if record:
            self._changed("camera")
        else:
            with self.unrecorded():
                self._changed("camera")

    # ---------------------------------------------------------------------------------------------- undo / redo
    def snapshot(self) -> ViewSnapshot:
        """The current view settings as one comparable value (see :class:`ViewSnapshot`)."""
        return ViewSnapshot(
            mode=self.mode,
            panel_modes=tuple(sorted(self.panel_modes.items())),
            cmap=self.cmap,
            invert=self.invert,
            panel_cmaps=tuple(sorted(self.panel_cmaps.items())),
            opacity=self.opacity,
            iso_fraction=self.iso_fraction,
            show_scale_bar=self.show_scale_bar,
            link_contrast=self.link_contrast,
            clims=tuple(sorted(self._manual_clims.items())),
            camera=self.camera,
        )

    def undo(self) -> bool:
        """Go back one view change; False when there is none."""
        snapshot = self.history.undo()
        if snapshot is not None:
            self._restore(snapshot)
        return snapshot is not None

    def redo(self) -> bool:
        """Redo the view change undone last; False when there is none."""
        snapshot = self.history.redo()
        if snapshot is not None:
            self._restore(snapshot)
        return snapshot is not None

    def _restore(self, snapshot: ViewSnapshot) -> None:
        """Apply ``snapshot`` (already the history's present) and announce what changed."""
        changed = snapshot.changed_fields(self.snapshot())
        self.mode, self.panel_modes = snapshot.mode, dict(snapshot.panel_modes)
        self.cmap, self.invert, self.panel_cmaps = snapshot.cmap, snapshot.invert, dict(snapshot.panel_cmaps)
        self.opacity, self.iso_fraction = snapshot.opacity, snapshot.iso_fraction
        self.show_scale_bar, self.link_contrast = snapshot.show_scale_bar, snapshot.link_contrast
        self._manual_clims, self.camera = dict(snapshot.clims), snapshot.camera
        with self.unrecorded():
            if changed - {"camera", "clims"}:
                self._changed("style")
            elif "clims" in changed:
                self._changed("contrast")
            if "camera" in changed:
                self._changed("camera")
