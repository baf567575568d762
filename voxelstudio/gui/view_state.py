"""How volumes are shown: render mode, colours, contrast limits, the cursor voxel and the optional fourth panel.

The 3-D panels and the 2-D slice views both read from one ViewState, so they always agree. The render mode is
global (``mode``: "all panels") unless a panel has its own (``panel_modes``); setting the global mode clears those.
Contrast limits are explicit per role: raw in its own units; target and prediction (trained to the target's units)
share the target's limits while ``link_contrast`` is on, so the panels are directly comparable.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from voxelstudio.core.volume import Volume
from voxelstudio.render import (
    OpacityCurve,
    SceneStyle,
    auto_clim,
    centre_index,
    check_render_mode,
    clamp_index,
    symmetric_clim,
)
from voxelstudio.render.transfer import Clim

EXTRA_PANELS = ("none", "residual", "uncertainty", "gradcam")
COLORMAPS = ("gray", "magma", "inferno", "viridis", "cividis", "hot", "bone")
DIVERGING_CMAP = "RdBu_r"
HEAT_CMAP = "inferno"
STYLE_SETTINGS = ("mode", "cmap", "opacity", "iso_fraction", "show_scale_bar", "link_contrast", "extra_panel")


class ViewState(QObject):
    """Shared display settings. ``changed(aspect)`` says what changed: "style", "contrast", "cursor", "layout", or
    "mode:<panel>" when only that 3-D panel's render mode changed."""

    changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mode = "mip"
        self.panel_modes: dict[str, str] = {}
        self.cmap = "gray"
        self.opacity = OpacityCurve()
        self.iso_fraction = 0.5
        self.show_scale_bar = True
        self.link_contrast = True
        self.extra_panel = "none"
        self.cursor: tuple[int, int, int] | None = None
        self._manual_clims: dict[str, Clim] = {}
        self._auto_cache: dict[str, weakref.WeakKeyDictionary[Volume, Clim]] = {}

    # ------------------------------------------------------------------------------------------------------ style
    def update(self, **changes: Any) -> None:
        """Set some of :data:`STYLE_SETTINGS`; emits one ``changed``. A new ``mode`` applies to all panels."""
        unknown = [name for name in changes if name not in STYLE_SETTINGS]
        if unknown:
            raise AttributeError(f"ViewState has no setting {unknown[0]!r}")
        if "mode" in changes:
            check_render_mode(changes["mode"])
            self.panel_modes.clear()
        if "extra_panel" in changes and changes["extra_panel"] not in EXTRA_PANELS:
            raise ValueError(f"unknown extra panel {changes['extra_panel']!r}")
        for name, value in changes.items():
            setattr(self, name, value)
        self.changed.emit("layout" if "extra_panel" in changes else "style")

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
            self.changed.emit(f"mode:{panel}")

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
            cmap=self.cmap_for(role),
            clim=self.clim_for(role, volume, volumes),
            opacity=self.opacity,
            iso_fraction=self.iso_fraction,
            slice_index=cursor,
            show_scale_bar=self.show_scale_bar,
            draft=draft,
        )

    def cmap_for(self, role: str) -> str:
        return {"residual": DIVERGING_CMAP, "gradcam": HEAT_CMAP}.get(role, self.cmap)

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
        self.changed.emit("contrast")

    def forget_role(self, role: str) -> None:
        """A new volume arrived for ``role``: drop its manual limits (they were set for other data)."""
        if self._manual_clims.pop(role, None) is not None:
            self.changed.emit("contrast")

    # ----------------------------------------------------------------------------------------------------- cursor
    def set_cursor(self, index_yxz: tuple[int, int, int] | None) -> None:
        """The voxel the slice views and the slice-plane render mode go through."""
        index = None if index_yxz is None else tuple(int(i) for i in index_yxz)
        if index != self.cursor:
            self.cursor = index  # type: ignore[assignment]
            self.changed.emit("cursor")

    def with_opacity(self, **changes: float) -> None:
        """Change one parameter of the composite-rendering opacity curve."""
        self.update(opacity=dataclasses.replace(self.opacity, **changes))
