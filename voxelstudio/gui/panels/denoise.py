"""Denoise panel: which model, test-time augmentation, Denoise/Cancel with per-tile progress, and the
Richardson–Lucy baseline."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from voxelstudio.gui.panels.common import ElidedLabel, ProgressRow
from voxelstudio.jobs.events import ProgressEvent

BUNDLED_TIP = (
    "The bundled denoiser, trained on simulated bead scans of many microscopes. For bead scans of your microscope, "
    "Train > Adapt to the raw volume fits it to them; with Fine-tune unchecked it only puts the beads back where "
    "they are, in 15-30 seconds (it puts those of oil-objective scans of water or glycerol samples "
    "up to a plane too deep)."
)


class DenoisePanel(QWidget):
    """Emits ``denoise_requested(tta)``, ``deconvolve_requested(iterations)`` and ``cancel_requested``."""

    denoise_requested = Signal(bool)
    deconvolve_requested = Signal(int)
    cancel_requested = Signal()
    load_model_requested = Signal()
    show_uncertainty_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_label = ElidedLabel(objectName="model_label")  # the whole path in its tooltip
        load = QPushButton("Load model…")
        load.clicked.connect(self.load_model_requested)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_label, 1)
        model_row.addWidget(load)
        self.tta = QCheckBox("Test-time augmentation", objectName="tta")
        self.tta.setToolTip("Average the 8 flips and rotations of the volume (8x slower); their spread becomes an "
                            "uncertainty volume")  # fmt: skip
        self.denoise_button = QPushButton("Denoise", objectName="denoise_button")
        self.denoise_button.setToolTip("Clean the raw volume with the current model")
        self.denoise_button.clicked.connect(lambda: self.denoise_requested.emit(self.tta.isChecked()))
        self.uncertainty_button = QPushButton("Show uncertainty")
        self.uncertainty_button.setEnabled(False)
        self.uncertainty_button.clicked.connect(self.show_uncertainty_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.denoise_button, 1)
        buttons.addWidget(self.uncertainty_button)
        self.progress = ProgressRow("Cancel", self)
        self.progress.stop_requested.connect(self.cancel_requested)
        model_box = QGroupBox("Deep-learning denoiser")
        model_layout = QVBoxLayout(model_box)
        model_layout.addLayout(model_row)
        model_layout.addWidget(self.tta)
        model_layout.addLayout(buttons)

        self.iterations = QSpinBox(objectName="rl_iterations", minimum=1, maximum=500, value=20)
        self.deconvolve_button = QPushButton("Richardson–Lucy baseline", objectName="deconvolve_button")
        self.deconvolve_button.setToolTip("Classical deconvolution with the microscope's PSF, for comparison")
        self.deconvolve_button.clicked.connect(lambda: self.deconvolve_requested.emit(self.iterations.value()))
        baseline_box = QGroupBox("Baseline")
        baseline = QFormLayout(baseline_box)
        baseline.addRow("Iterations", self.iterations)
        baseline.addRow(self.deconvolve_button)

        layout = QVBoxLayout(self)
        layout.addWidget(model_box)
        layout.addWidget(baseline_box)
        layout.addWidget(self.progress)
        layout.addStretch(1)
        self.set_model(None)

    def set_model(self, path: Path | None) -> None:
        self.model_label.setText("Model: bundled default" if path is None else f"Model: {Path(path).name}")
        self.model_label.setToolTip(BUNDLED_TIP if path is None else str(path))

    def set_has_uncertainty(self, available: bool) -> None:
        self.uncertainty_button.setEnabled(available)

    def set_idle(self, idle: bool, has_raw: bool) -> None:
        self.denoise_button.setEnabled(idle and has_raw)
        self.deconvolve_button.setEnabled(idle and has_raw)

    def job_started(self, text: str) -> None:
        self.progress.started(text)

    def job_progress(self, progress: ProgressEvent) -> None:
        self.progress.progressed_with_eta(progress)

    def job_ended(self, outcome: str) -> None:
        self.progress.ended(outcome)
