"""Profile tab: intensity along the line dragged on a slice view, for raw, target and predicted, with the FWHM of
each curve's peak (the tool for judging axial elongation: drag across a bead in the XZ view)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from voxelstudio.core.volume import Volume
from voxelstudio.gui.canvas import QuietCanvas
from voxelstudio.gui.document import ROLE_LABELS
from voxelstudio.gui.panels.common import format_number
from voxelstudio.gui.plots import FACE, TEXT, _legend, styled_axes

COLORS = {"raw": "#9aa5b1", "target": "#7bd88f", "prediction": "#4fc3f7"}
ROLES = ("raw", "target", "prediction")

Profiles = dict[str, tuple[np.ndarray, np.ndarray]]


def profiles_along(
    volumes: Mapping[str, Volume], shape: tuple[int, ...], start, end
) -> tuple[Profiles, dict[str, float | None]]:
    """The raw, target and predicted profiles (distance µm, values) along a line, for volumes of ``shape``, and
    the FWHM (µm) of each one's peak."""
    # here, not at import: voxelstudio.metrics brings scikit-image and scipy.stats (0.8 s of the window's start-up)
    from voxelstudio.metrics.profile import line_profile, peak_fwhm

    profiles: Profiles = {}
    widths: dict[str, float | None] = {}
    for role in ROLES:
        volume = volumes.get(role)
        if volume is None or volume.shape != shape:
            continue
        profiles[role] = line_profile(volume.data, start, end, volume.spacing)
        widths[role] = peak_fwhm(*profiles[role])
    return profiles, widths


def normalised(values: np.ndarray) -> np.ndarray:
    """``values`` scaled to 0–1 over their own range: raw and clean volumes are often in different units, and the
    shape of the peak is what the plot compares."""
    low, high = float(np.min(values)), float(np.max(values))
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


class ProfilePlot(QuietCanvas):
    """The profiles as curves over distance along the line, each scaled to its own range (``profiles`` keeps the
    values). The axes, labels and one line per role are made once; a new line only moves their data (a drag redraws
    many times a second: clearing and re-laying out the axes each time cost most of a frame)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        figure = Figure(figsize=(3, 2.4), facecolor=FACE)
        figure.subplots_adjust(left=0.16, right=0.97, top=0.97, bottom=0.14)
        super().__init__(figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(160)
        self.profiles: Profiles = {}

    def build(self) -> None:
        axes = self.axes = styled_axes(self.figure)
        self.lines = {role: axes.plot([], [], color=COLORS[role], lw=1.2, label=ROLE_LABELS[role])[0] for role in ROLES}
        axes.set_xlabel("distance along the line (µm)", color=TEXT, fontsize=7)
        axes.set_ylabel("intensity (each curve's min–max)", color=TEXT, fontsize=7)
        axes.set_ylim(-0.05, 1.08)
        self.placeholder = axes.text(0.5, 0.5, "Drag a line on a slice view", color=TEXT, ha="center", va="center",
                                     transform=axes.transAxes, fontsize=8, alpha=0.7)  # fmt: skip

    def set_profiles(self, profiles: Profiles) -> None:
        self.profiles = profiles
        self.refresh()

    def redraw(self) -> None:
        self.ensure_built()
        axes, shown = self.axes, self.profiles
        for role, line in self.lines.items():
            distance, values = shown.get(role, ((), ()))
            line.set_data(distance, normalised(values) if len(values) else values)
            line.set_visible(role in shown)
        self.placeholder.set_visible(not shown)
        axes.axison = bool(shown)
        if shown:
            length = max(float(distance[-1]) for distance, _ in shown.values() if len(distance))
            axes.set_xlim(0.0, max(length, 1e-6))
            _legend(axes, [line for role, line in self.lines.items() if role in shown])
        elif axes.get_legend() is not None:
            axes.get_legend().remove()
        self.draw_idle()


class ProfilePanel(QWidget):
    """The line profile plot and each curve's FWHM."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        hint = QLabel("Drag a line on any slice view (XY, XZ or YZ): the intensity of raw, target and predicted "
                      "along it, and the width (FWHM) of the brightest peak.", self)  # fmt: skip
        hint.setWordWrap(True)
        self.plot = ProfilePlot(self)
        self.summary = QLabel("", self)
        self.summary.setObjectName("profile_summary")
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)

    def show_line(self, volumes: Mapping[str, Volume], shape: tuple[int, ...], start, end) -> None:
        profiles, widths = profiles_along(volumes, shape, start, end)
        self.plot.set_profiles(profiles)
        shown = {role: f"{format_number(width)} µm" if width else "–" for role, width in widths.items()}
        parts = [f"{ROLE_LABELS[role]} {text}" for role, text in shown.items()]
        length = next(iter(profiles.values()))[0][-1] if profiles else 0.0
        self.summary.setText(f"FWHM of the peak: {', '.join(parts)} · line {format_number(float(length))} µm")
