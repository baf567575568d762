"""Train panel: the training configuration, Train/Stop, progress with ETA and the live loss plot."""

from __future__ import annotations

import json
import math
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from voxelstudio.core.progress import Progress
from voxelstudio.gui.panels.common import ProgressRow, format_duration, format_number
from voxelstudio.gui.plots import LossPlot

SETTINGS_KEY = "training/config"


def _spin(low: int, high: int, value: int, name: str) -> QSpinBox:
    box = QSpinBox(minimum=low, maximum=high)
    box.setValue(value)
    box.setObjectName(name)
    return box


def _triple(
    values: tuple[int, int, int], name: str, low: int = 1, high: int = 512
) -> tuple[QHBoxLayout, list[QSpinBox]]:
    row = QHBoxLayout()
    boxes = [_spin(low, high, v, f"{name}_{axis}") for axis, v in zip("yxz", values, strict=True)]
    for box in boxes:
        row.addWidget(box)
    return row, boxes


class TrainPanel(QWidget):
    """Builds a ``TrainConfig`` from its widgets; ``train_requested(config)`` and ``stop_requested`` go out."""

    train_requested = Signal(object)
    stop_requested = Signal()

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from voxelstudio.ml.config import ARCHITECTURES, LOSSES, TrainConfig

        self.settings = settings
        defaults = TrainConfig()
        self.arch = QComboBox(objectName="arch")
        self.arch.addItems(ARCHITECTURES)
        self.loss = QComboBox(objectName="loss")
        self.loss.addItems(LOSSES)
        self.filters = _spin(1, 256, defaults.model.filters, "filters")
        kernel_row, self.kernel = _triple(defaults.model.kernel, "kernel", high=64)
        self.epochs = _spin(1, 100_000, defaults.epochs, "epochs")
        self.minutes = QDoubleSpinBox(objectName="minutes", minimum=0.0, maximum=10_000.0, decimals=1)
        self.minutes.setSpecialValueText("no limit")
        self.minutes.setSuffix(" min")
        self.learning_rate = QDoubleSpinBox(objectName="learning_rate", decimals=6, minimum=1e-6, maximum=1.0)
        self.learning_rate.setSingleStep(1e-4)
        self.batch = _spin(1, 1024, defaults.batch_size, "batch_size")
        patch_row, self.patch = _triple(defaults.patch_shape, "patch", low=4, high=1024)
        self.steps = _spin(1, 100_000, defaults.steps_per_epoch, "steps_per_epoch")
        form = QFormLayout()
        form.addRow("Architecture", self.arch)
        form.addRow("Filters", self.filters)
        form.addRow("Kernel (y x z)", kernel_row)
        form.addRow("Loss", self.loss)
        form.addRow("Epochs", self.epochs)
        form.addRow("Time budget", self.minutes)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Batch size", self.batch)
        form.addRow("Patch (y x z)", patch_row)
        form.addRow("Steps per epoch", self.steps)
        config_box = QGroupBox("Training configuration")
        config_box.setLayout(form)

        self.train_button = QPushButton("Train", objectName="train_button")
        self.train_button.setToolTip("Train a denoiser on the raw/target pair")
        self.train_button.clicked.connect(lambda: self.train_requested.emit(self.config()))
        defaults_button = QPushButton("Defaults")
        defaults_button.clicked.connect(lambda: self.set_config(TrainConfig()))
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button, 1)
        buttons.addWidget(defaults_button)
        self.progress = ProgressRow("Stop", self)
        self.progress.stop_requested.connect(self.stop_requested)
        self.plot = LossPlot(self, validation_label="whole volume")
        self.plot.setToolTip(
            "Loss on the random training patches (each step) and on the whole loaded volume (each epoch). "
            "With one raw/target pair there is no held-out data: the whole-volume loss picks the best model."
        )

        layout = QVBoxLayout(self)
        layout.addWidget(config_box)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot, 1)
        self._result_text: str | None = None
        self.arch.currentTextChanged.connect(self._arch_changed)
        self.set_config(self._saved_config(defaults))

    # ------------------------------------------------------------------------------------------------ config
    def config(self) -> Any:
        """The TrainConfig the widgets describe (validated; raises ValueError naming the bad field)."""
        from voxelstudio.ml.config import DenoiserConfig, LossConfig, TrainConfig

        model = DenoiserConfig.for_arch(
            self.arch.currentText(), filters=self.filters.value(), kernel=tuple(b.value() for b in self.kernel)
        )
        return TrainConfig(
            model=model,
            loss=LossConfig(name=self.loss.currentText()),
            epochs=self.epochs.value(),
            minutes=self.minutes.value() or None,
            learning_rate=self.learning_rate.value(),
            batch_size=self.batch.value(),
            patch_shape=tuple(b.value() for b in self.patch),
            steps_per_epoch=self.steps.value(),
        ).validate()

    def set_config(self, config: Any) -> None:
        self.arch.blockSignals(True)
        self.arch.setCurrentText(config.model.arch)
        self.arch.blockSignals(False)
        self.loss.setCurrentText(config.loss.name)
        self.filters.setValue(config.model.filters)
        for box, value in zip(self.kernel, config.model.kernel, strict=True):
            box.setValue(value)
        self.epochs.setValue(config.epochs)
        self.minutes.setValue(config.minutes or 0.0)
        self.learning_rate.setValue(config.learning_rate)
        self.batch.setValue(config.batch_size)
        for box, value in zip(self.patch, config.patch_shape, strict=True):
            box.setValue(value)
        self.steps.setValue(config.steps_per_epoch)

    def remember(self, config: Any) -> None:
        """Store ``config`` as the next session's defaults."""
        self.settings.setValue(SETTINGS_KEY, config.to_json())

    def _saved_config(self, defaults: Any) -> Any:
        text = self.settings.value(SETTINGS_KEY, "")
        if not text:
            return defaults
        try:
            return type(defaults).from_json(str(text)).validate()
        except (ValueError, TypeError, json.JSONDecodeError):
            return defaults  # settings from another version: fall back quietly

    def _arch_changed(self, arch: str) -> None:
        from voxelstudio.ml.config import DenoiserConfig

        model = DenoiserConfig.for_arch(arch)
        self.filters.setValue(model.filters)
        for box, value in zip(self.kernel, model.kernel, strict=True):
            box.setValue(value)

    # ---------------------------------------------------------------------------------------------- progress
    def training_started(self, config: Any) -> None:
        self.remember(config)
        self.plot.clear()
        self.progress.started("Preparing training data…")

    def training_progress(self, progress: Progress) -> None:
        values = progress.values
        epoch, epochs = values.get("epoch"), values.get("epochs")
        step, steps = values.get("step"), values.get("steps")
        loss, val_loss = float(values.get("loss", math.nan)), float(values.get("val_loss", math.nan))
        if epoch is None:
            self.progress.progressed(progress)
            return
        text = f"epoch {epoch}/{epochs} · step {step}/{steps} · loss {format_number(loss)}"
        if math.isfinite(val_loss):
            text += f" · whole volume {format_number(val_loss)}"
        text += f" · ETA {format_duration(float(values.get('eta_s', math.nan)))}"
        self.progress.progressed(progress, text)
        position = (epoch - 1) + (step or 0) / max(steps or 1, 1)
        finished_epoch = epoch if progress.message == "validated" else None
        self.plot.add(position, loss, finished_epoch, val_loss)

    def training_ended(self, outcome: str) -> None:
        self.progress.ended(outcome, self._result_text if outcome == "finished" else None)
        self._result_text = None

    def training_result(self, result: Any) -> None:
        """Say how training ended: epochs run, why it stopped, the best loss and where the model is."""
        reasons = {
            "epochs": "all epochs done",
            "time": "time budget reached",
            "early_stopping": "no more improvement",
            "cancelled": "stopped",
        }
        text = f"{result.epochs_run} epoch(s), {reasons.get(result.stopped_reason, result.stopped_reason)}"
        if math.isfinite(result.best_val_loss):
            text += f"; best loss {format_number(result.best_val_loss)}"
        text += "; no model saved." if result.model_path is None else f"; model {result.model_path.name} kept."
        self._result_text = text

    def set_idle(self, idle: bool) -> None:
        self.train_button.setEnabled(idle)
