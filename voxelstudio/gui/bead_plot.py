"""The measured average bead beside the simulator's fitted bead, as XZ sections drawn to scale (a small matplotlib
canvas): how well the calibration of an adaptation matches the microscope."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from PySide6.QtWidgets import QSizePolicy, QWidget

from voxelstudio.gui.canvas import QuietCanvas
from voxelstudio.gui.plots import FACE, TEXT
from voxelstudio.jobs.events import CalibrationFound

PANELS = (("measured", "measured_xz", "measured_fwhm_um"), ("fitted", "fitted_xz", "fitted_fwhm_um"))


def fwhm_text(widths: tuple[float, float]) -> str:
    """``"FWHM xy 0.32 · z 1.13 µm"``, ``–`` for a width that could not be measured."""
    lateral, axial = (f"{w:.2f}" if math.isfinite(w) else "–" for w in widths)
    return f"FWHM xy {lateral} · z {axial} µm"


class BeadComparisonPlot(QuietCanvas):
    """Two XZ images side by side (x across, z up, in µm), each titled with its lateral and axial FWHM."""

    def __init__(self, parent: QWidget | None = None) -> None:
        figure = Figure(figsize=(3, 1.9), facecolor=FACE)
        figure.subplots_adjust(left=0.1, right=0.98, top=0.8, bottom=0.2, wspace=0.35)
        super().__init__(figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(190)
        self.calibration: CalibrationFound | None = None

    def build(self) -> None:
        self.axes = list(self.figure.subplots(1, 2))

    def show_calibration(self, calibration: CalibrationFound | None) -> None:
        """Draw ``calibration``'s beads (None: empty)."""
        self.calibration = calibration
        self.refresh()

    def redraw(self) -> None:
        self.ensure_built()
        calibration = self.calibration
        for axes, (label, image_field, fwhm_field) in zip(self.axes, PANELS, strict=True):
            axes.clear()
            _style(axes)
            if calibration is None:
                axes.set_axis_off()
                continue
            axes.set_axis_on()
            section = np.asarray(getattr(calibration, image_field))
            _, dx, dz = calibration.spacing_um
            extent = (0.0, section.shape[0] * dx, 0.0, section.shape[1] * dz) if section.size else None
            axes.imshow(section.T, origin="lower", extent=extent, cmap="magma", vmin=0.0, vmax=1.0,
                        interpolation="nearest")  # fmt: skip
            axes.set_title(f"{label}\n{fwhm_text(getattr(calibration, fwhm_field))}", color=TEXT, fontsize=7)
            axes.set_xlabel("x (µm)", color=TEXT, fontsize=7)
            axes.set_ylabel("z (µm)", color=TEXT, fontsize=7)
        self.draw_idle()


def _style(axes) -> None:
    axes.set_facecolor(FACE)
    axes.tick_params(which="both", colors=TEXT, labelsize=7)
    for spine in axes.spines.values():
        spine.set_color("#555d66")
