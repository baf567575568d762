"""Synced orthogonal 2-D slice views (XY, with XZ below and YZ to the right) under each 3-D panel.

The views keep their true aspect ratios and are laid out to fill the panel (see
:func:`~voxelstudio.render.slices.slice_layout`): for a shallow stack XZ gets the full width so the axial elongation
stays readable.

All views go through the view state's cursor voxel: sliders move it, a click moves it to the clicked voxel, and
hovering shows the voxel index and its position in µm with the raw, target and predicted values there. Axial (z)
elongation shows in XZ. The XY view carries a scale bar of a round length in µm (from the volume's spacing).
"""

from __future__ import annotations

from matplotlib import patheffects
from matplotlib.figure import Figure
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from voxelstudio.core.volume import Volume
from voxelstudio.gui.canvas import QuietCanvas
from voxelstudio.gui.document import Document
from voxelstudio.gui.fine_slices import PlaneRequest, fine_extents, plane_request
from voxelstudio.gui.levels import is_coarse_level
from voxelstudio.gui.view_state import ViewState
from voxelstudio.gui.viewports import AFFECTED_PANELS, PANEL_ROLES
from voxelstudio.render import (
    PLANES,
    centre_index,
    clamp_index,
    nice_length,
    orthogonal_slices,
    plane_extents,
    point_at,
    rescale_index,
    slice_layout,
    voxel_at,
)
from voxelstudio.render.colormaps import colormap
from voxelstudio.render.scene import BACKGROUND, FOREGROUND

CROSSHAIR = "#4fc3f7"
PROFILE_COLOR = "#f0c05a"
PROBE_ROLES = ("raw", "target", "prediction")
SCALE_BAR_COLOR = "white"
_OUTLINE = [patheffects.withStroke(linewidth=2.5, foreground="black")]  # readable on bright and dark slices
_AXIS_OF_SLIDER = {"z": 2, "y": 0, "x": 1}


class SlicePanel(QuietCanvas):
    """XY, XZ and YZ planes of one volume through the cursor, with a crosshair."""

    hovered = Signal(object)  # (y, x, z) or None
    clicked = Signal(object)  # (y, x, z)
    line_drawn = Signal(object, object)  # start, end: (y, x, z) voxel coordinates (floats) of a dragged line

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Figure(facecolor=BACKGROUND))
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(120, 120)
        self.volume: Volume | None = None
        self.index = (0, 0, 0)
        self._layout_key: tuple | None = None
        self._axes, self._images, self._lines = {}, {}, {}
        self.mpl_connect("motion_notify_event", self._on_motion)
        self.mpl_connect("button_press_event", self._on_press)
        self.mpl_connect("button_release_event", self._on_release)
        self.mpl_connect("figure_leave_event", lambda _event: self.hovered.emit(None))
        self._drag: tuple[str, tuple[float, float, float], tuple[float, float]] | None = None
        self._profile_line = None
        self.scale_bar_um: float | None = None  # length of the XY view's scale bar (None: not shown)
        self._scale_bar_artists: tuple = ()

    def show_volume(
        self,
        volume: Volume | None,
        index: tuple[int, int, int],
        cmap: str,
        clim,
        hint: str,
        *,
        now: bool = False,
        scale_bar: bool = True,
    ) -> None:
        """Show the planes of ``volume`` through ``index`` in the colormap ``cmap`` (a name) between ``clim``, with
        a scale bar on XY if ``scale_bar``. ``now`` draws at once (a new volume: one panel, so the draw does not land
        in a later paint of the whole window, next to a 3-D render); else on the next turn."""
        self.volume = volume
        if volume is None:
            self._layout_key = None
            self.figure.clear()
            self.figure.text(0.5, 0.5, hint, color=FOREGROUND, ha="center", va="center", fontsize=9, alpha=0.7)
            self.draw_idle()
            return
        self.index = clamp_index(index, volume.shape)
        if self._layout_key != (volume.shape, volume.spacing):
            self._build(volume)
        planes = orthogonal_slices(volume.data, self.index)
        extents = plane_extents(volume.shape, volume.spacing)
        for plane in PLANES:
            image = self._images[plane]
            image.set_data(getattr(planes, plane))
            image.set_extent(extents[plane])  # the coarse level's, where full-resolution planes were shown
            image.set_cmap(colormap(cmap))
            image.set_clim(*clim)
        for artist in self._scale_bar_artists:
            artist.set_visible(scale_bar)
        self.scale_bar_um = self._scale_bar_length if scale_bar else None
        self._place_crosshair(volume)
        if now and self.isVisible():
            self.draw()
        else:
            self.draw_idle()

    def show_planes(self, planes: dict, extents: dict) -> None:
        """Show other arrays for the planes (full-resolution ones: ``gui.fine_slices``), each over its extent in
        the same frame; the view limits, colormap and colour range stay."""
        for plane, data in planes.items():
            axes = self._axes[plane]
            limits = axes.get_xlim(), axes.get_ylim()
            self._images[plane].set_data(data)
            self._images[plane].set_extent(extents[plane])
            axes.set_xlim(limits[0])
            axes.set_ylim(limits[1])
        self.draw_idle()

    def _build(self, volume: Volume) -> None:
        self.figure.clear()
        self._axes, self._images, self._lines = {}, {}, {}
        extents = plane_extents(volume.shape, volume.spacing)
        planes = orthogonal_slices(volume.data, self.index)
        for plane in PLANES:
            axes = self.figure.add_axes((0.0, 0.0, 1.0, 1.0))
            axes.set_axis_off()
            self._axes[plane] = axes
            self._images[plane] = axes.imshow(
                getattr(planes, plane), extent=extents[plane], interpolation="nearest", origin="upper"
            )
            axes.set_aspect("auto")  # the rectangles from slice_layout already have the true aspect ratio
            label = axes.text(
                0.02, 0.97, plane.upper(), transform=axes.transAxes, color=FOREGROUND, fontsize=7, va="top"
            )
            label.set_path_effects(_OUTLINE)  # readable on bright slices too
            line_style = {"color": CROSSHAIR, "lw": 0.6, "alpha": 0.5, "linestyle": (0, (3, 3))}
            self._lines[plane] = (axes.axvline(0, **line_style), axes.axhline(0, **line_style))
        self._layout_key = (volume.shape, volume.spacing)
        self._profile_line = None
        self._add_scale_bar(volume, extents["xy"])
        self._place_axes()

    def _add_scale_bar(self, volume: Volume, extent: tuple[float, float, float, float]) -> None:
        """A bar of round length (about a fifth of the width) near the XY view's lower left corner, in data units
        (µm), so it keeps its meaning at any zoom or window size."""
        left, right, bottom, top = extent  # bottom > top: row 0 is on top
        length = nice_length(right - left)
        x0 = left + 0.05 * (right - left)
        y0 = bottom - 0.07 * (bottom - top)
        axes = self._axes["xy"]
        (bar,) = axes.plot([x0, x0 + length], [y0, y0], color=SCALE_BAR_COLOR, lw=2.5, solid_capstyle="butt")
        bar.set_path_effects(_OUTLINE)
        label = axes.text(
            x0 + length / 2, y0 - 0.02 * (bottom - top), f"{length:g} µm", color=SCALE_BAR_COLOR, fontsize=7,
            ha="center", va="bottom",
        )  # fmt: skip
        label.set_path_effects(_OUTLINE)
        self._scale_bar_artists = (bar, label)
        self._scale_bar_length = length
        self.scale_bar_um = length

    def _place_axes(self) -> None:
        """Fit the three views into the canvas (again after a resize): see :func:`slice_layout`."""
        if self.volume is None or not self._axes:
            return
        width, height = self.figure.bbox.width, self.figure.bbox.height
        rects = slice_layout(self.volume.shape, self.volume.spacing, (width, height))
        for plane, (left, bottom, w, h) in rects.items():
            self._axes[plane].set_position((left / width, bottom / height, w / width, h / height))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_axes()

    def _place_crosshair(self, volume: Volume) -> None:
        y, x, z = self.index
        sy, sx, sz = volume.spacing
        positions = {"xy": (x * sx, y * sy), "xz": (x * sx, z * sz), "yz": (z * sz, y * sy)}
        for plane, (u, v) in positions.items():
            vertical, horizontal = self._lines[plane]
            vertical.set_xdata([u, u])
            horizontal.set_ydata([v, v])

    def voxel_under(self, event) -> tuple[int, int, int] | None:
        if self.volume is None or event.inaxes is None or event.xdata is None:
            return None
        plane = next((p for p, axes in self._axes.items() if axes is event.inaxes), None)
        if plane is None:
            return None
        index = voxel_at(plane, event.xdata, event.ydata, self.index, self.volume.spacing)
        return clamp_index(index, self.volume.shape)

    def _point_under(self, event) -> tuple[str, tuple[float, float, float]] | None:
        """The plane under the mouse and the (unrounded) voxel coordinates of the point."""
        if self.volume is None or event.inaxes is None or event.xdata is None:
            return None
        plane = next((p for p, axes in self._axes.items() if axes is event.inaxes), None)
        if plane is None:
            return None
        return plane, point_at(plane, event.xdata, event.ydata, self.index, self.volume.spacing)

    def _on_motion(self, event) -> None:
        self.hovered.emit(self.voxel_under(event))
        if self._drag is not None and event.button == 1:
            under = self._point_under(event)
            if under is not None and under[0] == self._drag[0]:
                self.draw_line(self._drag[0], self._drag[1], under[1])

    def _on_press(self, event) -> None:
        index = self.voxel_under(event)
        if index is not None:
            self.clicked.emit(index)
            under = self._point_under(event)
            self._drag = None if under is None or event.button != 1 else (under[0], under[1], (event.x, event.y))

    def _on_release(self, _event) -> None:
        self._drag = None

    def draw_line(self, plane: str, start: tuple[float, float, float], end: tuple[float, float, float]) -> None:
        """Show the profile line from ``start`` to ``end`` (voxel coordinates) on ``plane`` and emit it."""
        if self.volume is None or plane not in self._axes:
            return
        sy, sx, sz = self.volume.spacing
        to_plot = {"xy": lambda p: (p[1] * sx, p[0] * sy), "xz": lambda p: (p[1] * sx, p[2] * sz),
                   "yz": lambda p: (p[2] * sz, p[0] * sy)}[plane]  # fmt: skip
        (u0, v0), (u1, v1) = to_plot(start), to_plot(end)
        if self._profile_line is not None:
            self._profile_line.remove()
        (self._profile_line,) = self._axes[plane].plot([u0, u1], [v0, v1], color=PROFILE_COLOR, lw=1.2)
        self.draw_idle()
        self.line_drawn.emit(tuple(start), tuple(end))


class SliceViews(QWidget):
    """A row of slice panels aligned with the 3-D panels, cursor sliders and the value probe.

    ``line_drawn(volume, start, end)`` fires while a line is dragged on a slice view (for the line profile)."""

    line_drawn = Signal(object, object, object)
    planes_wanted = Signal(str, object)  # panel role, PlaneRequest or None (gui.fine_slices)

    def __init__(self, document: Document, view: ViewState, viewports, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document, self.view, self.viewports = document, view, viewports
        self.panels = {role: SlicePanel(self) for role in PANEL_ROLES}
        row = QHBoxLayout()
        row.setSpacing(4)
        row.setContentsMargins(0, 0, 0, 0)
        for panel in self.panels.values():
            row.addWidget(panel, 1)
            panel.hovered.connect(self._probe)
            panel.clicked.connect(self.view.set_cursor)
            panel.line_drawn.connect(lambda start, end, p=panel: self.line_drawn.emit(p.volume, start, end))
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 2, 6, 2)
        self.sliders: dict[str, QSlider] = {}
        for name in ("z", "y", "x"):
            slider = QSlider(Qt.Orientation.Horizontal, self)
            slider.setObjectName(f"slice_{name}")
            slider.setToolTip(f"{name} index of the slice planes")
            slider.valueChanged.connect(self._on_slider)
            bar.addWidget(QLabel(name, self))
            bar.addWidget(slider, 1)
            self.sliders[name] = slider
        self.probe = QLabel("Hover a slice to read voxel values; click to move the planes.", self)
        self.probe.setObjectName("probe")
        self.probe.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens the window
        self.probe.setMinimumWidth(120)
        self.probe.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar.addWidget(self.probe, 6)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row, 1)
        layout.addLayout(bar)
        self._new_data: set[str] = set()
        self._levels: dict[str, tuple | None] = {}  # role -> (source, level, shape) of the volume shown
        self._new_data_timer = QTimer(self, singleShot=True, interval=0)
        self._new_data_timer.timeout.connect(self._refresh_new_data)
        document.volume_changed.connect(self._on_volume_changed)
        viewports.drawing_done.connect(self._new_data_timer.start)
        view.changed.connect(self._on_view_changed)
        self.refresh()

    def _on_view_changed(self, aspect: str) -> None:
        if aspect != "camera" and not aspect.startswith("mode:"):  # those change the 3-D views only
            self.refresh()

    def _on_volume_changed(self, role: str) -> None:
        """New data is drawn here after the 3-D panels have drawn it (they are what the eye goes to first), one
        panel per turn of the event loop. Another resolution level of the same store keeps the cursor on the same
        place in the sample."""
        volume = self.document.volume(role)
        level = None if volume is None else (volume.source, volume.metadata.get("level"), volume.shape)
        before = self._levels.get(role)
        other_level = level is not None and before is not None and level[0] == before[0] and level[1:] != before[1:]
        if other_level and level[1] is not None and self.view.cursor is not None and role == self._reference_role():
            self.view.set_cursor(rescale_index(self.view.cursor, before[2], level[2]))
        self._levels[role] = level
        self._new_data.update(AFFECTED_PANELS[role])
        self._new_data_timer.start()

    def _reference_role(self) -> str | None:
        volumes = self.document.volumes()
        return next((r for r in ("raw", "target", "prediction") if r in volumes), None)

    def _refresh_new_data(self) -> None:
        if self.viewports.drawing_pending:
            return  # drawing_done starts the timer again
        panel_role = next((r for r in PANEL_ROLES if r in self._new_data), None)
        if panel_role is not None:
            self._new_data.discard(panel_role)
            self.refresh((panel_role,), now=True)
        if self._new_data:
            self._new_data_timer.start()

    def reference_shape(self) -> tuple[int, int, int] | None:
        role = self._reference_role()
        return None if role is None else self.document.volumes()[role].shape

    def refresh(self, panel_roles: tuple[str, ...] = PANEL_ROLES, *, now: bool = False) -> None:
        """Update these panels (and the sliders) from the document and the cursor."""
        shape = self.reference_shape()
        if shape is not None and (self.view.cursor is None or clamp_index(self.view.cursor, shape) != self.view.cursor):
            self.view.set_cursor(
                centre_index(shape) if self.view.cursor is None else clamp_index(self.view.cursor, shape)
            )
            return  # set_cursor emitted a change that refreshes again
        self._sync_sliders(shape)
        volumes = self.document.volumes()
        residual = self.document.residual()
        if residual is not None:
            volumes["residual"] = residual
        cursor = self.view.cursor or (0, 0, 0)
        for panel_role in panel_roles:
            panel = self.panels[panel_role]
            visible = panel_role != "extra" or self.view.extra_panel != "none"
            panel.setVisible(visible)
            if not visible:
                continue
            role = self.viewports.role_of(panel_role)
            volume = self.viewports.volume_of(panel_role)
            clim = None if volume is None else self.view.clim_for(role, volume, volumes)
            cmap = self.view.cmap_for(role, panel_role)
            panel.show_volume(volume, cursor, cmap, clim, "", now=now, scale_bar=self.view.show_scale_bar)
            self.planes_wanted.emit(panel_role, plane_request(volume, panel.index))

    def show_fine_planes(self, panel_role: str, request: PlaneRequest, planes: dict) -> None:
        """Show full-resolution ``planes`` read for ``request`` if the panel still shows that slice."""
        panel = self.panels[panel_role]
        if panel.isVisible() and plane_request(panel.volume, panel.index) == request:
            panel.show_planes(planes, fine_extents(request))

    def _sync_sliders(self, shape: tuple[int, int, int] | None) -> None:
        cursor = self.view.cursor or (0, 0, 0)
        for name, slider in self.sliders.items():
            axis = _AXIS_OF_SLIDER[name]
            slider.blockSignals(True)
            slider.setEnabled(shape is not None)
            slider.setRange(0, 0 if shape is None else shape[axis] - 1)
            slider.setValue(cursor[axis])
            slider.blockSignals(False)

    def _on_slider(self) -> None:
        if self.reference_shape() is None:
            return
        index = [0, 0, 0]
        for name, slider in self.sliders.items():
            index[_AXIS_OF_SLIDER[name]] = slider.value()
        self.view.set_cursor(tuple(index))

    def probe_text(self, index: tuple[int, int, int]) -> str:
        """The voxel index, its position in µm (from the volumes' spacing) and the raw, target and predicted values
        there; of a coarse level, the readout says which (the full-resolution planes drawn do not change it)."""
        parts = [f"voxel (y, x, z) = ({index[0]}, {index[1]}, {index[2]})"]
        raw = self.document.volume("raw")
        if is_coarse_level(raw):  # its voxels and values, not the full-resolution planes' drawn over them
            parts[0] = f"level {raw.metadata['level']} {parts[0]}"
        spacing = self.document.spacing
        if spacing is not None:
            y, x, z = (i * s for i, s in zip(index, spacing, strict=True))
            parts[0] += f" = ({y:.4g}, {x:.4g}, {z:.4g}) µm"
        for role in PROBE_ROLES:
            volume = self.document.volume(role)
            if volume is not None and all(0 <= i < n for i, n in zip(index, volume.shape, strict=True)):
                parts.append(f"{role} {float(volume.data[index]):.4g}")
        return "   ".join(parts)

    def _probe(self, index: tuple[int, int, int] | None) -> None:
        if index is not None:
            text = self.probe_text(index)
            self.probe.setText(text)
            self.probe.setToolTip(text)  # the whole line, where a narrow window cuts it
