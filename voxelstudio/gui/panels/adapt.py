"""The Train tab's "Adapt to the raw volume" box: fit the simulator to the beads of the loaded raw volume, fine-tune
the bundled denoiser on matched simulated pairs (no target needed), and show what the calibration found."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from voxelstudio.gui.bead_plot import BeadComparisonPlot
from voxelstudio.gui.job_handlers import AdaptHandler
from voxelstudio.gui.panels.common import ElidedLabel, ProgressRow, format_duration, format_number
from voxelstudio.jobs.events import CalibrationFound, ProgressEvent, TrainingStep
from voxelstudio.sim.params import OpticsParams

FITTED_LABELS = {
    "na": "NA",
    "wavelength_um": "emission wavelength (µm)",
    "ns": "sample refractive index",
    "depth_um": "depth below the coverslip (µm)",
    "z_step_um": "z step (µm)",
    "bead_sigma_vox": "bead size σ (voxels)",
    "photons": "photons at the peak",
    "read_noise": "read noise (e⁻)",
    "offset": "camera offset (e⁻)",
    "gain": "gain (counts per e⁻)",
}
DEFAULT_MINUTES = 5.0  # tasks.adapt.DEFAULT_MINUTES (the window imports no tasks at start; a test keeps them equal)
FILE_ROLES = {
    "dark": (
        "Dark stack",
        "A stack recorded with no light and the same camera settings: the camera's offset and read noise are "
        "measured on it. None: they are estimated from the background around the beads.",
    ),
    "psf": (
        "Measured PSF",
        "A measured PSF stack (same voxel size): the pairs are simulated with it. None: with the Gibson-Lanni "
        "model fitted to the beads.",
    ),
}
"""The files the user may give the calibration: option key -> (label, tooltip)."""
SETTINGS_KEYS = tuple(f"adapt/{name}" for name in ("minutes", "fine_tune", "na", "wavelength_um", "dark", "psf"))


class OptionalFile(QWidget):
    """A file the user may choose or clear, shown by its name; ``choose_requested`` asks the window for one (it
    owns the dialogs)."""

    choose_requested = Signal()

    def __init__(self, role: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        _label, self._tooltip = FILE_ROLES[role]
        self.path: str | None = None
        self.label = ElidedLabel("none", self, objectName=f"adapt_{role}_file")
        choose = QPushButton("…", self, objectName=f"choose_adapt_{role}")
        choose.setMaximumWidth(36)  # the style's default minimum (80 px) would widen the whole tab
        choose.setToolTip(self._tooltip)
        choose.clicked.connect(self.choose_requested)
        self.clear_button = QPushButton("×", self, objectName=f"clear_adapt_{role}")
        self.clear_button.setMaximumWidth(36)
        self.clear_button.setToolTip("Use none")
        self.clear_button.clicked.connect(lambda: self.set_path(None))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(choose)
        row.addWidget(self.clear_button)
        self.set_path(None)

    def set_path(self, path: str | None) -> None:
        self.path = path or None
        self.label.setText("none" if self.path is None else Path(self.path).name)
        self.label.setToolTip(self._tooltip if self.path is None else self.path)
        self.clear_button.setEnabled(self.path is not None)


def _optional_number(name: str, key: str, decimals: int, suffix: str) -> QDoubleSpinBox:
    """A spin box over the simulator's range of ``key`` whose lowest step means "fit it from the beads"."""
    low, high = OpticsParams.ranges()[key]
    box = QDoubleSpinBox(objectName=name, decimals=decimals, minimum=low - 10.0**-decimals, maximum=high)
    box.setSingleStep(10.0 ** (1 - decimals))
    box.setSpecialValueText("fitted from the beads")
    box.setSuffix(suffix)
    box.setValue(box.minimum())
    return box


class AdaptBox(QGroupBox):
    """Adapt button with its time budget (or no fine-tuning) and what the user knows of the microscope, progress
    with Stop, then the fitted values and the measured vs fitted bead. Out go ``adapt_requested(minutes,
    calibration_options, fine_tune)``, ``stop_requested`` and ``choose_file_requested(role)`` (a key of
    :data:`FILE_ROLES`)."""

    adapt_requested = Signal(float, object, bool)
    stop_requested = Signal()
    choose_file_requested = Signal(str)

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__("Adapt to the raw volume (no target needed)", parent)
        self.settings = settings
        self.minutes = QDoubleSpinBox(objectName="adapt_minutes", minimum=0.1, maximum=600.0, decimals=1)
        self.minutes.setSuffix(" min")  # its value: the last session's, or DEFAULT_MINUTES (_restore)
        self.minutes.setToolTip("Time for the whole adaptation: the calibration, then fine-tuning on simulated pairs")
        self.adapt_button = QPushButton("Adapt", objectName="adapt_button")
        self.adapt_button.setToolTip(
            "Fit the simulator's optics and camera noise to the beads of the loaded raw volume, simulate pairs "
            "with them and fine-tune the bundled denoiser on those: a model for this microscope without targets. "
            "It becomes the current model."
        )
        self.fine_tune = QCheckBox("Fine-tune for", self, objectName="adapt_fine_tune", checked=True)
        self.fine_tune.setToolTip(
            "Unchecked: only calibrate and store, in a copy of the bundled model, the shift that puts its beads back "
            "where they are (15-30 seconds); fine-tuning on matched simulated pairs does more"
        )
        self.fine_tune.toggled.connect(self.minutes.setEnabled)
        self.adapt_button.clicked.connect(self._adapt_clicked)
        self.na = _optional_number("adapt_na", "na", 2, "")
        self.na.setToolTip("The objective's numerical aperture; left at its lowest step, it is fitted to the beads")
        self.wavelength = _optional_number("adapt_wavelength", "wavelength_um", 3, " µm")
        self.wavelength.setToolTip("The beads' emission wavelength; left at its lowest step, it is fitted")
        self.files = {role: OptionalFile(role, self) for role in FILE_ROLES}
        for role, choice in self.files.items():
            choice.choose_requested.connect(lambda r=role: self.choose_file_requested.emit(r))
        self.progress = ProgressRow("Stop", self)
        self.progress.stop_requested.connect(self.stop_requested)
        self.summary = QLabel("", self, objectName="calibration_summary")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 3, self, objectName="calibration_table")
        self.table.setHorizontalHeaderLabels(["fitted", "value", "±"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for policy in (self.table.setHorizontalScrollBarPolicy, self.table.setVerticalScrollBarPolicy):
            policy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.beads = BeadComparisonPlot(self)
        row = QHBoxLayout()
        row.addWidget(self.fine_tune)
        row.addWidget(self.minutes)
        row.addWidget(self.adapt_button, 1)
        known = QFormLayout()
        known.addRow("NA", self.na)
        known.addRow("Emission", self.wavelength)
        for role, choice in self.files.items():
            known.addRow(FILE_ROLES[role][0], choice)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(known)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        layout.addWidget(self.beads)
        self._result_text: str | None = None
        self.show_calibration(None)
        self._restore()

    def _adapt_clicked(self) -> None:
        self._remember()
        self.adapt_requested.emit(self.minutes.value(), self.calibration_options(), self.fine_tune.isChecked())

    def _remember(self) -> None:
        """What the user chose, for the next session: a microscope's optics and camera files rarely change."""
        values = (self.minutes.value(), self.fine_tune.isChecked(), self.na.value(), self.wavelength.value(),
                  self.files["dark"].path or "", self.files["psf"].path or "")  # fmt: skip
        for key, value in zip(SETTINGS_KEYS, values, strict=True):
            self.settings.setValue(key, value)

    def _restore(self) -> None:
        """The choices of the last adaptation; a file that is no longer there is left out."""
        minutes, fine_tune, na, wavelength, dark, psf = SETTINGS_KEYS
        self.minutes.setValue(float(self.settings.value(minutes, DEFAULT_MINUTES, type=float)))
        self.fine_tune.setChecked(bool(self.settings.value(fine_tune, True, type=bool)))
        self.na.setValue(float(self.settings.value(na, self.na.minimum(), type=float)))
        self.wavelength.setValue(float(self.settings.value(wavelength, self.wavelength.minimum(), type=float)))
        for role, key in (("dark", dark), ("psf", psf)):
            path = str(self.settings.value(key, "") or "")
            self.set_file(role, path if path and Path(path).is_file() else None)

    def show_job(self, handler: AdaptHandler) -> None:
        """Show the adaptation jobs ``handler`` receives (connected once)."""
        handler.started.connect(self.adapt_started)
        handler.progressed.connect(self.adapt_progress)
        handler.step.connect(self.adapt_step)
        handler.calibrated.connect(self.show_calibration)
        handler.finished.connect(self.adapt_result)
        handler.ended.connect(self.adapt_ended)

    def set_ready(self, ready: bool) -> None:
        """Enable Adapt when no job runs and a raw volume is loaded."""
        self.adapt_button.setEnabled(ready)

    def set_file(self, role: str, path: str | None) -> None:
        """Give the calibration the file of ``role`` (a key of :data:`FILE_ROLES`); None: none."""
        self.files[role].set_path(path)

    def calibration_options(self) -> dict[str, Any]:
        """What the user gave, as ``tasks.adapt.adapt_volumes`` takes it: values left at "fitted" are left out."""
        options: dict[str, Any] = {
            key: box.value() for key, box in (("na", self.na), ("wavelength_um", self.wavelength))
            if box.value() > box.minimum()
        }  # fmt: skip
        options.update({role: choice.path for role, choice in self.files.items() if choice.path is not None})
        return options

    # ---------------------------------------------------------------------------------------------- progress
    def adapt_started(self, text: str) -> None:
        self._result_text = None
        self.show_calibration(None)
        self.progress.started(text)

    def adapt_progress(self, event: ProgressEvent) -> None:
        """Calibration stages and the simulation of the pairs."""
        self.progress.progressed(event, event.message.capitalize() + "…" if event.message else None)

    def adapt_step(self, step: TrainingStep) -> None:
        """A fine-tuning step; its fraction is the share of the time budget spent."""
        loss = f" · validation {format_number(step.val_loss)}" if math.isfinite(step.val_loss) else ""
        text = f"Fine-tuning · epoch {step.epoch} · loss {format_number(step.loss)}{loss}"
        self.progress.progressed(step, f"{text} · {format_duration(step.eta_s)} left")

    def show_calibration(self, calibration: CalibrationFound | None) -> None:
        """The fitted values with their standard errors, the fit's quality and the beads (None: clear)."""
        self.beads.show_calibration(calibration)
        rows = () if calibration is None else calibration.fitted
        self.table.setRowCount(len(rows))
        self.table.setVisible(bool(rows))
        self.beads.setVisible(calibration is not None)
        for index, (name, value, sd) in enumerate(rows):
            for column, text in enumerate((FITTED_LABELS.get(name, name), format_number(value), format_number(sd))):
                self.table.setItem(index, column, QTableWidgetItem(text))
        rows_height = self.table.verticalHeader().defaultSectionSize() * len(rows)
        header_height = self.table.horizontalHeader().sizeHint().height()
        self.table.setFixedHeight(rows_height + header_height + 2 * self.table.frameWidth())
        if calibration is None:
            self.summary.setText("")
            return
        fit = "converged" if calibration.converged else "did not converge"
        residual = calibration.relative_residual
        residual_text = f"; residual {residual:.0%} of the bead's signal" if math.isfinite(residual) else ""
        direction = " The stack runs the other way (the bead's longer tail): pairs are simulated so."
        reversed_text = direction if calibration.z_reversed else ""
        self.summary.setText(
            f"Calibrated on {calibration.beads_used} beads: fit {fit}{residual_text}.{reversed_text} "
            "Measured average bead vs the simulator's fitted bead (XZ, through the centre):"
        )

    def adapt_result(self, outcome: Any) -> None:
        """Say how the adaptation ended and whether its model is now the current one."""
        training = outcome.training
        if outcome.completed:
            if training is not None:
                how = f"Adapted in {training.epochs_run} epoch(s)"
            else:  # the bead summary that follows says why a model was not corrected
                how = "Corrected" if outcome.corrected else "Calibrated, not corrected"
                how += " (not fine-tuned)"
            see = " Denoise to see its prediction." if outcome.corrected else ""
            self._result_text = (
                f"{how}; {outcome.model_path.name} is now the current model. {outcome.bead_offset}{see}"
            ).strip()
        elif outcome.model_path is not None:
            self._result_text = "Stopped; the current model is unchanged (the partial model stays in the runs folder)."
        else:
            self._result_text = "Stopped before the first epoch ended; no model saved, the current model is unchanged."

    def adapt_ended(self, outcome: str) -> None:
        if outcome == "cancelled":
            self._result_text = "Stopped; the current model is unchanged."
        elif outcome == "failed":
            self._result_text = "Failed (see the message); the current model is unchanged."
        self.progress.ended(outcome, self._result_text)
        self._result_text = None
