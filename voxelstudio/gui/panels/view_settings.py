"""View settings: render mode (all panels), colormap (all panels or one), contrast (with histogram), opacity curve,
isosurface level, voxel spacing. Each 3-D panel's title bar can override the render mode for that panel.

The widgets only edit and mirror the :class:`ViewState`; after undo/redo they show what it holds."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from voxelstudio.gui.document import ROLE_LABELS, Document
from voxelstudio.gui.levels import LevelChooser
from voxelstudio.gui.plots import HistogramPlot
from voxelstudio.gui.view_state import COLORMAPS, EXTRA_PANELS, ViewState
from voxelstudio.render import MODE_LABELS, RENDER_MODES
from voxelstudio.render.colormaps import COLORMAP_LABELS

CONTRAST_ROLES = ("raw", "target", "prediction", "residual")
ALL_PANELS = "all"
COLORMAP_PANELS = {ALL_PANELS: "All panels", "raw": "Raw", "target": "Target", "prediction": "Predicted",
                   "extra": "Fourth panel"}  # fmt: skip


def _slider(low: int, high: int, value: int, tip: str) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(low, high)
    slider.setValue(value)
    slider.setToolTip(tip)
    return slider


class ViewSettingsPanel(QWidget):
    """Edits the shared :class:`ViewState`; ``spacing_requested`` asks the controller to change voxel spacing."""

    spacing_requested = Signal(object)  # (y, x, z) micrometres
    reset_camera_requested = Signal()
    level_requested = Signal(str, str)  # role, level path in its multiscale store

    def __init__(self, document: Document, view: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document, self.view = document, view
        self._shown_limits: tuple[float, float] | None = None  # what _sync_contrast last put into the limit boxes
        self.mode = QComboBox(objectName="render_mode")
        self.mode.setToolTip("Render mode of every 3-D panel (each panel's title bar can pick its own)")
        for mode in RENDER_MODES:
            self.mode.addItem(MODE_LABELS[mode], mode)
        self.cmap_panel = QComboBox(objectName="colormap_panel")
        self.cmap_panel.setToolTip(
            "Which panel the colormap applies to: all panels (clears each panel's own), or one panel"
        )
        for key, label in COLORMAP_PANELS.items():
            self.cmap_panel.addItem(label, key)
        self.cmap = QComboBox(objectName="colormap")
        for name in COLORMAPS:
            self.cmap.addItem(COLORMAP_LABELS[name], name)
        self.cmap.setToolTip('Colormap of the panel picked in "Colormap of"; remembered for the next launch')
        self.invert = QCheckBox("Invert", objectName="invert_colormap")
        self.invert.setToolTip("Reverse the colormap (high values dark)")
        cmap_row = QHBoxLayout()
        cmap_row.addWidget(self.cmap, 1)
        cmap_row.addWidget(self.invert)
        self.extra = QComboBox(objectName="extra_panel")
        for name in EXTRA_PANELS:
            self.extra.addItem("None" if name == "none" else ROLE_LABELS[name], name)
        self.extra.setToolTip(
            "Residual: red where the prediction is brighter than the target, blue where darker (unless the panel has "
            "its own colormap); errors near 0 are transparent in 3-D (the opacity curve sets how near)"
        )
        self.scale_bar = QCheckBox("Scale bar", checked=view.show_scale_bar)
        reset = QPushButton("Reset camera")
        reset.clicked.connect(self.reset_camera_requested)
        display = QFormLayout()
        display.addRow("Render (all)", self.mode)
        display.addRow("Colormap of", self.cmap_panel)
        display.addRow("Colormap", cmap_row)
        display.addRow("Fourth panel", self.extra)
        display.addRow(self.scale_bar, reset)

        self.contrast_role = QComboBox(objectName="contrast_role")
        for role in CONTRAST_ROLES:
            self.contrast_role.addItem(ROLE_LABELS[role], role)
        self.histogram = HistogramPlot(self)
        self.low = QDoubleSpinBox(objectName="clim_low", decimals=4, minimum=-1e9, maximum=1e9)
        self.high = QDoubleSpinBox(objectName="clim_high", decimals=4, minimum=-1e9, maximum=1e9)
        auto = QPushButton("Auto")
        auto.setToolTip("Percentile limits (0.1–99.95 %) of the volume")
        auto.clicked.connect(lambda: self.view.set_clim(self._role(), None))
        self.link = QCheckBox("Same contrast for target and predicted", checked=view.link_contrast)
        limits = QHBoxLayout()
        for widget in (self.low, self.high, auto):
            limits.addWidget(widget)
        contrast = QVBoxLayout()
        contrast.addWidget(self.contrast_role)
        contrast.addWidget(self.histogram)
        contrast.addLayout(limits)
        contrast.addWidget(self.link)

        self.opacity_start = _slider(
            0,
            90,
            round(view.opacity.start * 100),
            "Intensity (% of range) below which voxels are transparent; for the residual, % of its limit on either "
            "side of 0 (also in MIP)",
        )
        self.opacity_gamma = _slider(2, 40, round(view.opacity.gamma * 10), "Curve steepness: higher hides dim haze")
        self.iso = _slider(1, 99, round(view.iso_fraction * 100), "Isosurface level, % of the contrast range")
        shape = QFormLayout()
        shape.addRow("Opacity start", self.opacity_start)
        shape.addRow("Opacity curve", self.opacity_gamma)
        shape.addRow("Iso level", self.iso)

        self.spacing = [QDoubleSpinBox(decimals=4, minimum=1e-4, maximum=1e4, singleStep=0.01) for _ in range(3)]
        spacing_row = QHBoxLayout()
        for axis, box in zip("yxz", self.spacing, strict=True):
            box.setObjectName(f"spacing_{axis}")
            box.setPrefix(f"{axis} ")
            spacing_row.addWidget(box)
        self.apply_spacing = QPushButton("Apply")
        self.apply_spacing.setObjectName("apply_spacing")
        self.apply_spacing.clicked.connect(lambda: self.spacing_requested.emit(tuple(b.value() for b in self.spacing)))
        spacing_row.addWidget(self.apply_spacing)

        layout = QVBoxLayout(self)
        for title, inner in (
            ("Display", display),
            ("Contrast", contrast),
            ("Opacity and isosurface", shape),
            ("Voxel size (µm)", spacing_row),
        ):
            group = QGroupBox(title)
            group.setLayout(inner)
            layout.addWidget(group)
        self.resolution = LevelChooser(document, self)
        self.resolution.level_requested.connect(self.level_requested)
        layout.addWidget(self.resolution)
        layout.addStretch(1)
        self._let_shrink()

        # activated, not currentIndexChanged: picking the shown mode again still resets per-panel modes
        self.mode.activated.connect(lambda _index: view.update(mode=self.mode.currentData()))
        self.cmap.activated.connect(lambda _index: self._colormap_edited())
        self.invert.clicked.connect(lambda _on: self._colormap_edited())
        self.cmap_panel.currentIndexChanged.connect(lambda _index: self._sync_colormap())
        self.extra.currentIndexChanged.connect(lambda: view.update(extra_panel=self.extra.currentData()))
        self.scale_bar.toggled.connect(lambda on: view.update(show_scale_bar=on))
        self.link.toggled.connect(lambda on: view.update(link_contrast=on))
        self.contrast_role.currentIndexChanged.connect(lambda: self._sync_contrast(with_histogram=True))
        self.low.editingFinished.connect(self._limits_edited)
        self.high.editingFinished.connect(self._limits_edited)
        self.opacity_start.valueChanged.connect(lambda v: view.with_opacity(start=v / 100))
        self.opacity_gamma.valueChanged.connect(lambda v: view.with_opacity(gamma=v / 10))
        self.iso.valueChanged.connect(lambda v: view.update(iso_fraction=v / 100))
        view.changed.connect(self._on_view_changed)
        document.volume_changed.connect(self._on_volume_changed)
        self._sync_all()

    def set_idle(self, idle: bool) -> None:
        """A new voxel size replaces every volume, so it waits for the running job (whose previews and results
        belong to the volumes it started from)."""
        self.apply_spacing.setEnabled(idle)
        self.apply_spacing.setToolTip("" if idle else "Wait for the running job to finish, or stop it")

    def _let_shrink(self) -> None:
        """Boxes may be narrower than their longest text (a ±1e9 spin box asks for 143 px), so the tab fits its
        350 px column without a horizontal scroll bar hiding the right-hand controls."""
        for box in self.findChildren(QComboBox):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(6)
        for spin in self.findChildren(QDoubleSpinBox):
            spin.setMinimumWidth(56)

    def _role(self) -> str:
        return self.contrast_role.currentData()

    def _volume(self):
        role = self._role()
        return self.document.residual() if role == "residual" else self.document.volume(role)

    def _limits_edited(self) -> None:
        """Pin the limits typed in (not merely shown: leaving a box untouched keeps automatic limits automatic)."""
        low, high = self.low.value(), self.high.value()
        if (low, high) == self._shown_limits:
            return
        if high > low and self._volume() is not None:
            self.view.set_clim(self._role(), (low, high))

    def _colormap_edited(self) -> None:
        name, invert, panel = self.cmap.currentData(), self.invert.isChecked(), self.cmap_panel.currentData()
        if panel == ALL_PANELS:
            self.view.update(cmap=name, invert=invert)
        else:
            self.view.set_panel_cmap(panel, name, invert)

    def _sync_colormap(self) -> None:
        """Show the colormap choice of the selected panel (the shared one for "All panels")."""
        panel = self.cmap_panel.currentData()
        name, inverted = (self.view.cmap, self.view.invert) if panel == ALL_PANELS else self.view.panel_colormap(panel)
        self.cmap.blockSignals(True)
        index = self.cmap.findData(name)
        if index < 0:  # a colormap set from code that the box does not offer
            self.cmap.addItem(name, name)
            index = self.cmap.count() - 1
        self.cmap.setCurrentIndex(index)
        self.cmap.blockSignals(False)
        self.invert.blockSignals(True)
        self.invert.setChecked(inverted)
        self.invert.blockSignals(False)

    def _on_view_changed(self, aspect: str) -> None:
        if aspect in ("contrast", "style"):
            self._sync_contrast()
        if aspect in ("style", ""):
            self._sync_colormap()
            for box, on in ((self.scale_bar, self.view.show_scale_bar), (self.link, self.view.link_contrast)):
                box.blockSignals(True)
                box.setChecked(on)
                box.blockSignals(False)
            self._sync_sliders()
        if aspect == "layout":
            self.extra.blockSignals(True)
            self.extra.setCurrentIndex(EXTRA_PANELS.index(self.view.extra_panel))
            self.extra.blockSignals(False)
        self.mode.blockSignals(True)
        self.mode.setCurrentIndex(RENDER_MODES.index(self.view.mode))
        self.mode.blockSignals(False)
        panels = ("raw", "target", "prediction") + (("extra",) if self.view.extra_panel != "none" else ())
        in_use = self.view.modes_in_use(panels)
        signed_mip = self.view.extra_panel == "residual" and self.view.mode_for("extra") == "mip"
        self.opacity_start.setEnabled("composite" in in_use or signed_mip)  # the residual's MIP uses the curve
        self.opacity_gamma.setEnabled("composite" in in_use or signed_mip)
        self.iso.setEnabled("isosurface" in in_use)

    def _sync_sliders(self) -> None:
        opacity = self.view.opacity
        for slider, value in (
            (self.opacity_start, round(opacity.start * 100)),
            (self.opacity_gamma, round(opacity.gamma * 10)),
            (self.iso, round(self.view.iso_fraction * 100)),
        ):
            slider.blockSignals(True)
            slider.setValue(value)
            slider.blockSignals(False)

    def _on_volume_changed(self, role: str) -> None:
        shown = self._role()
        affects_shown = role == shown or (shown == "residual" and role in ("prediction", "target"))
        self._sync_spacing()
        self._sync_contrast(with_histogram=affects_shown)

    def _sync_spacing(self) -> None:
        spacing = self.document.spacing
        for box, value in zip(self.spacing, spacing or (1.0, 1.0, 1.0), strict=True):
            box.setValue(value)

    def _sync_all(self) -> None:
        self._sync_spacing()
        self._sync_contrast(with_histogram=True)
        self._on_view_changed("")

    def _sync_contrast(self, *, with_histogram: bool = False) -> None:
        volume = self._volume()
        enabled = volume is not None
        for widget in (self.low, self.high):
            widget.setEnabled(enabled)
        if volume is None:
            self.histogram.set_data(None)
            return
        volumes = self.document.volumes()
        if self._role() == "residual":
            volumes["residual"] = volume
        low, high = self.view.clim_for(self._role(), volume, volumes)
        for box, value in ((self.low, low), (self.high, high)):
            box.blockSignals(True)
            box.setValue(value)
            box.setSingleStep(max((high - low) / 100, 1e-4))
            box.blockSignals(False)
        self._shown_limits = (self.low.value(), self.high.value())  # as the boxes round them
        if with_histogram:
            self.histogram.set_data(volume.data)
        self.histogram.set_limits(low, high)
