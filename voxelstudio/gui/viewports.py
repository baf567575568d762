"""Linked 3-D panels (raw, target, predicted, and an optional residual/uncertainty panel).

One ``pyvistaqt.QtInteractor`` per panel, all sharing one vtkCamera: turning one turns all. Each panel's title bar
has a render-mode box (the View tab's mode sets all panels). Panels redraw when the document or the view state
changes, one panel per turn of the event loop. A new volume of the same shape in the same style (a training preview)
reuses the panel's actors, and previews are drawn as drafts (coarser ray casting) until training ends. Everything
here runs on the GUI thread. Call :meth:`ViewportGrid.close` on exit: an interactor destroyed without ``close()``
can crash the process.
"""

from __future__ import annotations

import weakref

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QVBoxLayout, QWidget
from pyvistaqt import QtInteractor

from voxelstudio.core.volume import Volume
from voxelstudio.gui.colorbar import Colorbar
from voxelstudio.gui.document import ROLE_LABELS, ROLES, Document
from voxelstudio.gui.naming import maker_name
from voxelstudio.gui.panel_title import ElidedTitle
from voxelstudio.gui.view_state import CameraPose, ViewState
from voxelstudio.render import (
    MODE_LABELS,
    RENDER_MODES,
    SceneStyle,
    can_update,
    display_factors,
    display_image,
    draw_scene,
    reset_view,
    update_scene,
)
from voxelstudio.render.scene import BACKGROUND, FOREGROUND

PANEL_ROLES = ("raw", "target", "prediction", "extra")
CAMERA_SETTLE_MS = 400  # a camera that stopped moving this long is recorded in the view state (an undo step)
SHORT_MODE_LABELS = {"mip": "MIP", "composite": "Volume", "isosurface": "Isosurface", "slices": "Slices"}
PLACEHOLDERS = {
    "raw": "No raw volume\n\nFile > Open Raw…, or drop a file here",
    "target": "No target volume\n\nFile > Open Target…",
    "prediction": "No prediction yet\n\nTrain a model,\nor press Denoise",
    "residual": "The residual needs a prediction\nand a target of the same shape",
    "uncertainty": "Denoise with test-time augmentation\nto see the uncertainty",
    "gradcam": "Classify the volume (Classify tab)\nto see its Grad-CAM heat map",
}
# Which panels show a role's volume, directly or through derived data and linked contrast.
AFFECTED_PANELS = {
    "raw": ("raw",),
    "target": ("target", "prediction", "extra"),
    "prediction": ("prediction", "extra"),
    "uncertainty": ("extra",),
    "gradcam": ("extra",),
}


def reduction_note(shape: tuple[int, int, int]) -> str:
    """Title text saying that a big volume is drawn in 3-D from block maxima (the slice views show every voxel)."""
    factors = display_factors(shape)
    if factors == (1, 1, 1):
        return ""
    return f"  ·  3-D from {'×'.join(str(f) for f in factors)} block maxima"


def describe(volume: Volume) -> str:
    """Title text: the file (with its folder, since raw and target files often share a name) or the volume's
    name, and the shape."""
    source = volume.source
    label = f"{source.parent.name}/{source.name}" if source is not None and source.parent.name else volume.name
    level = f"  ·  level {volume.metadata['level']}" if volume.metadata.get("level", "0") != "0" else ""
    return f"{label}  ·  {'×'.join(str(n) for n in volume.shape)}{level}"


class VolumePanel(QFrame):
    """A title bar (volume name and shape, render-mode box) over one QtInteractor.

    ``mode_chosen(panel_role, mode)`` fires when the user picks a render mode in the title bar.
    """

    mode_chosen = Signal(str, str)

    def __init__(self, panel_role: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panel_role = panel_role
        self.setObjectName(f"panel_{panel_role}")
        self.title = ElidedTitle(self)
        self.title.setObjectName("panelTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.mode_box = QComboBox(self)
        self.mode_box.setObjectName(f"mode_{panel_role}")
        self.mode_box.setToolTip("Render mode of this panel (View > Render sets all panels)")
        for mode in RENDER_MODES:
            self.mode_box.addItem(SHORT_MODE_LABELS[mode], mode)
            self.mode_box.setItemData(self.mode_box.count() - 1, MODE_LABELS[mode], Qt.ItemDataRole.ToolTipRole)
        self.mode_box.activated.connect(lambda _index: self.mode_chosen.emit(panel_role, self.mode_box.currentData()))
        self.plotter = QtInteractor(self, auto_update=False)
        self.plotter.setAcceptDrops(False)  # drops go to the main window, which knows volumes
        self.plotter.set_background(BACKGROUND)
        self.plotter.add_axes(line_width=2, color=FOREGROUND, xlabel="x", ylabel="y", zlabel="z")
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.setSpacing(2)
        header.addWidget(self.title, 1)
        header.addWidget(self.mode_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.plotter, 1)
        self.colorbar = Colorbar(self)
        self.colorbar.setObjectName(f"colorbar_{panel_role}")
        layout.addWidget(self.colorbar)
        self.volume: Volume | None = None
        self.style: SceneStyle | None = None  # how the current scene was drawn (None: no scene)
        self._image = None
        self._image_source: Volume | None = None
        self._signed = False  # the image keeps signed extremes (a residual) where it is reduced
        self._scene_geometry: tuple | None = None

    def show_mode(self, mode: str) -> None:
        """Show ``mode`` in the title bar's box (without emitting ``mode_chosen``)."""
        self.mode_box.blockSignals(True)
        self.mode_box.setCurrentIndex(RENDER_MODES.index(mode))
        self.mode_box.blockSignals(False)

    def image(self, signed: bool | None = None):
        """The pyvista ImageData of the shown volume (rebuilt only when data, spacing or ``signed`` change; None:
        as last drawn)."""
        volume, source, signed = self.volume, self._image_source, self._signed if signed is None else signed
        assert volume is not None
        stale = source is None or source.data is not volume.data or source.spacing != volume.spacing
        if stale or signed != self._signed:
            self._image = display_image(volume.data, volume.spacing, signed=signed)
            self._image_source, self._signed = volume, signed
        return self._image

    def show_volume(self, role: str, volume: Volume | None, style_for, maker: str | None = None) -> None:
        """Draw ``volume`` (the ``role`` data) with ``style_for(role, volume)``, or a hint when there is none;
        ``maker`` names the model or method that made it (in the title).

        New data of the same geometry in the same style goes into the existing actors (no rebuild)."""
        self.volume = volume
        label = ROLE_LABELS[role]
        if volume is None:
            self.title.set_title(label)
            self._image, self._image_source, self.style, self._scene_geometry = None, None, None, None
            self.colorbar.clear()
            self.plotter.clear_actors()
            self.plotter.add_text(
                PLACEHOLDERS[role],
                position=(0.08, 0.45),
                viewport=True,
                font_size=10,
                color=FOREGROUND,
                name="placeholder",
            )
            return
        by = f"  ·  by {maker}" if maker else ""
        self.title.set_title(label, f"{describe(volume)}{by}{reduction_note(volume.shape)}")
        style = style_for(role, volume)
        image = self.image(style.signed)
        geometry = (tuple(image.dimensions), tuple(image.spacing))
        reusable = geometry == self._scene_geometry and can_update(self.style, style)
        if not (reusable and update_scene(self.plotter, image, style)):
            draw_scene(self.plotter, image, style)
        self.style, self._scene_geometry = style, geometry
        self.colorbar.set_scale(style.cmap, style.clim)

    def render_now(self) -> None:
        """Render once, now. (``plotter.render()`` renders and then schedules a repaint that renders again.)"""
        self.plotter.repaint()

    def close_plotter(self) -> None:
        self.plotter.close()


class ViewportGrid(QWidget):
    """The row of linked 3-D panels, subscribed to the document and the view state.

    ``frame_rendered(panel_role)`` fires after a panel was rendered with a volume in it; ``drawing_done`` when no
    drawing is left to do.
    """

    frame_rendered = Signal(str)
    drawing_done = Signal()

    def __init__(self, document: Document, view: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document, self.view = document, view
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.panels = {role: VolumePanel(role, self) for role in PANEL_ROLES}
        for panel in self.panels.values():
            layout.addWidget(panel, 1)
            panel.show_mode(view.mode_for(panel.panel_role))
            panel.mode_chosen.connect(view.set_panel_mode)
        self.camera = self.panels["raw"].plotter.camera
        for panel in list(self.panels.values())[1:]:
            panel.plotter.renderer.camera = self.camera
        # Drawing is spread over turns of the event loop, one panel rebuild or one render per turn, so a new
        # volume (a training preview, say) never freezes the window for long.
        self._stale: set[str] = set()
        self._dirty: set[str] = set()
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self._draw_step)
        self._camera_settled = QTimer(self, singleShot=True, interval=CAMERA_SETTLE_MS)
        self._camera_settled.timeout.connect(self._camera_came_to_rest)
        self.camera.AddObserver("ModifiedEvent", lambda *_: self._on_camera_moved())
        self._bounds: tuple[float, ...] | None = None
        self._settled: weakref.ref | None = None  # the preview that was current when training ended
        self._shown_data: dict[str, weakref.ref | None] = {}  # each role's array, to tell new data from new spacing
        self._closed = False
        self.panels["extra"].setVisible(view.extra_panel != "none")
        document.volume_changed.connect(self._on_volume_changed)
        document.model_changed.connect(self._on_model_changed)
        view.changed.connect(self._on_view_changed)
        self.refresh()

    def role_of(self, panel_role: str) -> str:
        return self.view.extra_panel if panel_role == "extra" else panel_role

    def volume_of(self, panel_role: str) -> Volume | None:
        role = self.role_of(panel_role)
        return self.document.residual() if role == "residual" else self.document.volume(role)

    def is_draft(self, role: str) -> bool:
        """Whether ``role`` data is drawn as a draft: a training preview (replaced every epoch) or data derived from
        one, until training ends (the document's model changes)."""
        prediction = self.document.volume("prediction")
        settled = None if self._settled is None else self._settled()
        live = prediction is not None and "preview" in prediction.metadata and prediction is not settled
        return live and role in ("prediction", "residual")

    def refresh(self, panel_roles: tuple[str, ...] = PANEL_ROLES) -> None:
        """Mark panels out of date; they are redrawn from the document over the next turns of the event loop."""
        self._stale.update(panel_roles)
        self._schedule()

    def request_render(self, panel_roles) -> None:
        """Render these panels (once each) over the next turns of the event loop."""
        self._dirty.update(panel_roles)
        self._schedule()

    def _schedule(self) -> None:
        if not self._closed:
            self._timer.start()

    def _draw_step(self) -> None:
        """One unit of drawing, for the leftmost panel with work: rebuild it if out of date, else render it."""
        if self._closed:
            return
        role = next((r for r in PANEL_ROLES if r in self._stale or r in self._dirty), None)
        if role in self._stale:
            self._stale.discard(role)
            self._rebuild(role)
        elif role is not None:
            self._dirty.discard(role)
            panel = self.panels[role]
            if panel.isVisible():
                panel.render_now()
                if panel.volume is not None:
                    self.frame_rendered.emit(role)
        if self._stale or self._dirty:
            self._schedule()
        else:
            self.drawing_done.emit()

    @property
    def drawing_pending(self) -> bool:
        return bool(self._stale or self._dirty) and not self._closed

    def _rebuild(self, panel_role: str) -> None:
        if panel_role == "extra" and self.view.extra_panel == "none":
            return
        volumes = self.document.volumes()
        residual = self.document.residual()
        if residual is not None:
            volumes["residual"] = residual

        def style_for(role: str, volume: Volume):
            return self.view.scene_style(role, volume, volumes, panel_role, draft=self.is_draft(role))

        role = self.role_of(panel_role)
        maker = maker_name(self.document.made_by(role)) if role in ROLES else None
        self.panels[panel_role].show_volume(role, self.volume_of(panel_role), style_for, maker)
        self._dirty.add(panel_role)
        bounds = self._data_bounds()
        if bounds is not None and bounds != self._bounds:
            self._bounds = bounds
            self.reset_camera(record=False)

    def flush(self) -> None:
        """Do all pending drawing now (before a screenshot or a test looks at the panels)."""
        self._timer.stop()
        while self.drawing_pending:
            self._draw_step()
        self._timer.stop()

    def _data_bounds(self) -> tuple[float, ...] | None:
        shown = [p for p in self.panels.values() if p.volume is not None and p.isVisibleTo(self)]
        return tuple(shown[0].image().bounds) if shown else None

    def reset_camera(self, *, record: bool = True) -> None:
        """Show the whole volume, looking along +z with row 0 on top, turned a little to show depth; ``record``:
        an undo step (False when new data placed the camera)."""
        shown = [p for p in self.panels.values() if p.volume is not None]
        if shown and not self._closed:
            reset_view(shown[0].plotter, shown[0].image())
            self.request_render(PANEL_ROLES)
            self.view.set_camera(self.camera_pose(), record=record)

    def camera_pose(self) -> CameraPose:
        """Where the shared camera is now."""
        camera = self.camera
        return CameraPose(
            tuple(camera.GetPosition()),
            tuple(camera.GetFocalPoint()),
            tuple(camera.GetViewUp()),
            camera.GetParallelScale(),
            camera.GetViewAngle(),
        ).rounded()

    def _on_camera_moved(self) -> None:
        self.request_render(PANEL_ROLES)
        if not self._closed:
            self._camera_settled.start()

    def _camera_came_to_rest(self) -> None:
        """Tell the view state where the camera stopped: an undo step once there is something to look at."""
        if self._closed:
            return
        pose, known = self.camera_pose(), self.view.camera
        if known is not None and pose.close_to(known):
            return  # where undo/redo (or the last step) put it: recording it again would clear the redo steps
        shows_data = any(panel.volume is not None for panel in self.panels.values())
        self.view.set_camera(pose, record=shows_data)

    def _apply_camera(self) -> None:
        """Put the camera where the view state says (undo/redo of a camera move)."""
        pose = self.view.camera
        if pose is None or pose == self.camera_pose() or self._closed:
            return
        self.camera.SetPosition(pose.position)
        self.camera.SetFocalPoint(pose.focal_point)
        self.camera.SetViewUp(pose.view_up)
        self.camera.SetParallelScale(pose.parallel_scale)
        self.camera.SetViewAngle(pose.view_angle)
        for panel in self.panels.values():
            panel.plotter.renderer.ResetCameraClippingRange()
        self.request_render(PANEL_ROLES)

    def render(self) -> None:
        """Bring every visible panel up to date and render it now."""
        self._dirty.update(PANEL_ROLES)
        self.flush()

    def grab_panels(self) -> QImage:
        """The visible panels as one image (for screenshots)."""
        self.render()
        return self.grab().toImage()

    def close(self) -> bool:
        """Close every interactor (required before the window goes away)."""
        if not self._closed:
            self._closed = True
            self._timer.stop()
            self._camera_settled.stop()
            for panel in self.panels.values():
                panel.close_plotter()
        return super().close()

    def _on_volume_changed(self, role: str) -> None:
        if role in ("raw", "target", "prediction"):
            volume = self.document.volume(role)
            shown = self._shown_data.get(role)
            if volume is None or shown is None or shown() is not volume.data:  # new data, not a new voxel size
                self.view.forget_role(role)
            self._shown_data[role] = None if volume is None else weakref.ref(volume.data)
        self.refresh(AFFECTED_PANELS[role])

    def _on_model_changed(self, _path) -> None:
        """Training ended (or a model was loaded): draw the last preview at full quality."""
        prediction = self.document.volume("prediction")
        self._settled = None if prediction is None else weakref.ref(prediction)
        self.refresh(tuple(r for r, p in self.panels.items() if p.style is not None and p.style.draft))

    def _on_view_changed(self, aspect: str) -> None:
        for panel in self.panels.values():
            panel.show_mode(self.view.mode_for(panel.panel_role))
        if aspect == "layout":
            self.panels["extra"].setVisible(self.view.extra_panel != "none")
            self.refresh(("extra",))
        elif aspect.startswith("mode:"):
            self.refresh((aspect.removeprefix("mode:"),))
        elif aspect == "camera":
            self._apply_camera()
        elif aspect == "cursor":
            self.refresh(tuple(r for r in PANEL_ROLES if self.view.mode_for(r) == "slices"))
        else:
            self.refresh()
