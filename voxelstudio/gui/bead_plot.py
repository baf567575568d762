"""The measured average bead beside the simulator's fitted bead, as XY and XZ sections drawn to scale (a small
matplotlib canvas): how well the calibration of an adaptation matches the microscope."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from PySide6.QtWidgets import QSizePolicy, QWidget

from voxelstudio.gui.canvas import QuietCanvas
from voxelstudio.gui.plots import FACE, TEXT
from voxelstudio.jobs.events import CalibrationFound

PANELS = (("measured", "measured", "measured_fwhm_um"), ("fitted", "fitted", "fitted_fwhm_um"))
"""(title, field prefix of the sections, field of the widths) per column."""
SECTIONS = (("xy", "y (µm)"), ("xz", "z (µm)"))
"""(field suffix, vertical axis label) per row: the focal plane, then the axial section."""


def fwhm_text(widths: tuple[float, float]) -> str:
    """``"FWHM xy 0.32 · z 1.13 µm"``, ``–`` for a width that could not be measured."""
    lateral, axial = (f"{w:.2f}" if math.isfinite(w) else "–" for w in widths)
    return f"FWHM xy {lateral} · z {axial} µm"


class BeadComparisonPlot(QuietCanvas):
    """Measured (left) and fitted (right) bead: XY on top, XZ below (x across, in µm); each column titled with its
    lateral and axial FWHM."""

    def __init__(self, parent: QWidget | None = None) -> None:
        figure = Figure(figsize=(3, 3.4), facecolor=FACE)
        figure.subplots_adjust(left=0.14, right=0.98, top=0.88, bottom=0.1, wspace=0.4, hspace=0.35)
        super().__init__(figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(340)
        self.calibration: CalibrationFound | None = None

    def build(self) -> None:
        self.axes = self.figure.subplots(2, 2)

    def show_calibration(self, calibration: CalibrationFound | None) -> None:
        """Draw ``calibration``'s beads (None: empty)."""
        self.calibration = calibration
        self.refresh()

    def redraw(self) -> None:
        self.ensure_built()
        calibration = self.calibration
        for column, (label, prefix, fwhm_field) in enumerate(PANELS):
            for row, (suffix, vertical) in enumerate(SECTIONS):
                axes = self.axes[row][column]
                axes.clear()
                _style(axes)
                if calibration is None:
                    axes.set_axis_off()
                    continue
                axes.set_axis_on()
                _draw_section(axes, calibration, np.asarray(getattr(calibration, f"{prefix}_{suffix}")), suffix)
                if row == 0:
                    title = f"{label}\n{fwhm_text(getattr(calibration, fwhm_field))}"
                    axes.set_title(title, color=TEXT, fontsize=7)
                axes.set_xlabel("x (µm)", color=TEXT, fontsize=7)
                axes.set_ylabel(vertical, color=TEXT, fontsize=7)
        self.draw_idle()


def _draw_section(axes, calibration: CalibrationFound, section: np.ndarray, suffix: str) -> None:
    """An XY section (rows y, columns x) or an XZ one (rows x, columns z), to scale, x across."""
    dy, dx, dz = calibration.spacing_um
    if not section.size:
        return
    if suffix == "xy":
        image, extent = section, (0.0, section.shape[1] * dx, 0.0, section.shape[0] * dy)
    else:
        image, extent = section.T, (0.0, section.shape[0] * dx, 0.0, section.shape[1] * dz)
    axes.imshow(image, origin="lower", extent=extent, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")


def _style(axes) -> None:
    axes.set_facecolor(FACE)
    axes.tick_params(which="both", colors=TEXT, labelsize=7)
    for spine in axes.spines.values():
        spine.set_color("#555d66")
