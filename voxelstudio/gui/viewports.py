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

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QHBoxLayout, QWidget

from voxelstudio.core.volume import Volume
from voxelstudio.gui.document import ROLES, Document
from voxelstudio.gui.naming import maker_name
from voxelstudio.gui.view_state import CameraPose, ViewState
from voxelstudio.gui.volume_panel import VolumePanel
from voxelstudio.render import reset_view

PANEL_ROLES = ("raw", "target", "prediction", "extra")
CAMERA_SETTLE_MS = 400  # a camera that stopped moving this long is recorded in the view state (an undo step)
# Which panels show a role's volume, directly or through derived data and linked contrast.
AFFECTED_PANELS = {
    "raw": ("raw",),
    "target": ("target", "prediction", "extra"),
    "prediction": ("prediction", "extra"),
    "uncertainty": ("extra",),
    "gradcam": ("extra",),
}


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
        self._settled: weakref.ref | None = None  # the preview data that was current when training ended
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
        live = prediction is not None and "preview" in prediction.metadata and prediction.data is not settled
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
        """Do all pending rebuilds and repaints now (Qt may still defer a repaint by a frame: see
        ``VolumePanel.render_now``; :meth:`grab_panels` renders what it grabs)."""
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
                if role != "raw":  # the residual is prediction - target: its pinned limits described the old one
                    self.view.forget_role("residual")
            self._shown_data[role] = None if volume is None else weakref.ref(volume.data)
        self.refresh(AFFECTED_PANELS[role])

    def _on_model_changed(self, _path) -> None:
        """Training ended (or a model was loaded): draw the last preview at full quality."""
        prediction = self.document.volume("prediction")  # by its data: a new voxel size keeps it settled
        self._settled = None if prediction is None else weakref.ref(prediction.data)
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
