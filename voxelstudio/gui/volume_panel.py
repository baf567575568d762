"""One 3-D panel: a title bar (what is shown, who made it, a render-mode box) over a QtInteractor and a colour bar.

A new volume of the same geometry in the same style (a training preview) goes into the panel's existing actors.
GUI thread only; :meth:`VolumePanel.close_plotter` must run before the widget goes (see ``viewports``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QVBoxLayout, QWidget
from pyvistaqt import QtInteractor

from voxelstudio.core.volume import Volume
from voxelstudio.gui.colorbar import Colorbar
from voxelstudio.gui.document import ROLE_LABELS
from voxelstudio.gui.panel_title import ElidedTitle
from voxelstudio.render import (
    MODE_LABELS,
    RENDER_MODES,
    SceneStyle,
    can_update,
    display_factors,
    display_image,
    draw_scene,
    update_scene,
)
from voxelstudio.render.scene import BACKGROUND, FOREGROUND

SHORT_MODE_LABELS = {"mip": "MIP", "composite": "Volume", "isosurface": "Isosurface", "slices": "Slices"}
PLACEHOLDERS = {
    "raw": "No raw volume\n\nFile > Open Raw…, or drop a file here",
    "target": "No target volume\n\nFile > Open Target…",
    "prediction": "No prediction yet\n\nTrain a model,\nor press Denoise",
    "residual": "The residual needs a prediction\nand a target of the same shape",
    "uncertainty": "Denoise with test-time augmentation\nto see the uncertainty",
    "gradcam": "Classify the volume (Classify tab)\nto see its Grad-CAM heat map",
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
    level, levels = volume.metadata.get("level"), volume.metadata.get("levels") or ()
    level = f"  ·  level {level}" if levels and level != levels[0].path else ""  # a coarser level than the finest
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
        """Repaint now, which renders once (``plotter.render()`` renders and then schedules a repaint that renders
        again). Qt may defer a repaint that comes within a frame of the window's last screen update to the next turn
        of the event loop; a user sees the frame then."""
        self.plotter.repaint()

    def close_plotter(self) -> None:
        self.plotter.close()
