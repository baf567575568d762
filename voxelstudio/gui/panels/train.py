"""Train panel: the training data and configuration (filled from a device preset; optionally starting from the
bundled model), Train/Stop, progress with ETA, live plots of the loss and of the preview's quality (validation PSNR,
bead z/xy FWHM ratio), the "Training data" box (:mod:`voxelstudio.gui.panels.train_data`) and the "Adapt to the raw
volume" box (:mod:`voxelstudio.gui.panels.adapt`)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
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

from voxelstudio.gui.panels.adapt import AdaptBox
from voxelstudio.gui.panels.common import ProgressRow, format_duration, format_number
from voxelstudio.gui.panels.train_data import TrainingDataBox
from voxelstudio.gui.panels.train_start import BundledStart, PresetBox
from voxelstudio.gui.plots import LossPlot, QualityPlot
from voxelstudio.jobs.events import EpochResult, PreviewQuality, ProgressEvent, TrainingStep
from voxelstudio.jobs.train import TrainingData

SETTINGS_KEY = "training/config"
START_KEYS = ("training/preset", "training/from_bundled")
DENOISE_TO_SEE = "Denoise to see its corrected prediction (the previews were the network's alone)."


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
        box.setMinimumWidth(44)  # three numbers share the field column: let them shrink below their size hint
        row.addWidget(box)
    return row, boxes


class TrainPanel(QWidget):
    """Builds a ``TrainConfig`` and the ``TrainingData`` from its widgets; ``train_requested(config)``,
    ``stop_requested`` and ``choose_folder_requested("raw" | "target")`` go out."""

    train_requested = Signal(object)
    stop_requested = Signal()
    choose_folder_requested = Signal(str)
    ready_changed = Signal(bool)  # whether Train can start now

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from voxelstudio.ml.config import ARCHITECTURES, LOSSES, TrainConfig

        self.settings = settings
        defaults = TrainConfig()
        self._base = defaults  # the config whose fields the widgets do not show (preset, mixed precision...)
        self._device_kind = "CPU"  # until the device probe says otherwise
        self.preset = PresetBox(self)
        self.from_bundled = BundledStart(self)
        self.arch = QComboBox(objectName="arch")
        self.arch.addItems(ARCHITECTURES)
        self.loss = QComboBox(objectName="loss")
        self.loss.addItems(LOSSES)
        self.filters = _spin(1, 256, defaults.model.filters, "filters")
        kernel_row, self.kernel = _triple(defaults.model.kernel, "kernel", high=64)
        self.spacing_input = QCheckBox("as an input", objectName="spacing_input")
        self.spacing_input.setToolTip(
            "The network also gets each volume's voxel size (one model for scans of several voxel sizes); it then "
            "needs the right voxel size of everything it denoises (View settings)"
        )
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
        form.addRow("Preset", self.preset)
        form.addRow("Architecture", self.arch)
        form.addRow("Filters", self.filters)
        form.addRow("Kernel (y x z)", kernel_row)
        form.addRow("Voxel size", self.spacing_input)
        form.addRow("Loss", self.loss)
        form.addRow("Epochs", self.epochs)
        form.addRow("Time budget", self.minutes)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Batch size", self.batch)
        form.addRow("Patch (y x z)", patch_row)
        form.addRow("Steps per epoch", self.steps)
        form.addRow(self.from_bundled)  # spans both columns: the label column stays narrow
        config_box = QGroupBox("Training configuration")
        config_box.setLayout(form)
        self.data = TrainingDataBox(settings, self)
        self.data.choose_folder_requested.connect(self.choose_folder_requested)

        self.train_button = QPushButton("Train", objectName="train_button")
        self.train_button.setToolTip("Train a denoiser on the chosen training data")
        self.train_button.clicked.connect(lambda: self.train_requested.emit(self.config()))
        defaults_button = QPushButton("Defaults")
        defaults_button.setToolTip("The chosen preset's recipe")
        defaults_button.clicked.connect(lambda: self.set_config(self.preset.recipe(self._device_kind)))
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button, 1)
        buttons.addWidget(defaults_button)
        self.progress = ProgressRow("Stop", self)
        self.progress.stop_requested.connect(self.stop_requested)
        self.plot = LossPlot(self, validation_label="whole volume")
        self.plot.setToolTip(
            "Loss on the random training patches (each step) and on the validation volume(s) (each epoch), which "
            "picks the best model. With only the loaded pair there is no held-out data: it validates on itself."
        )
        self.quality = QualityPlot(self)
        self.quality.setToolTip(
            "Validation PSNR per epoch, and the median axial/lateral (z/xy) bead FWHM ratio of each live preview "
            "against the target's own ratio (dashed): elongated beads have a ratio well above the target's."
        )

        layout = QVBoxLayout(self)
        layout.addWidget(self.data)
        layout.addWidget(config_box)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.quality, 2)
        self.adapt = AdaptBox(settings, self)
        layout.addWidget(self.adapt)
        self._result_text: str | None = None
        self._last_step: TrainingStep | None = None
        self._stopped_at: float | None = None
        self._idle, self._has_pair = True, False
        self._validation_label = "whole volume"
        self.arch.currentTextChanged.connect(self._arch_changed)
        for signal in (self.arch.currentTextChanged, self.filters.valueChanged, self.spacing_input.toggled,
                       *(box.valueChanged for box in self.kernel)):  # fmt: skip
            signal.connect(self._model_changed)
        self.from_bundled.adopt_requested.connect(self._adopt_architecture)
        self._restore_start()
        self.set_config(self._saved_config(self.preset.recipe(self._device_kind)))
        self.preset.activated.connect(lambda _index: self.set_config(self.preset.recipe(self._device_kind)))
        self.data.changed.connect(self._update_train_button)
        self._update_train_button()

    # ------------------------------------------------------------------------------------------------ config
    def config(self) -> Any:
        """The TrainConfig the widgets describe (validated; raises ValueError naming the bad field)."""
        return dataclasses.replace(
            self._base,
            model=self._model(),
            loss=dataclasses.replace(self._base.loss, name=self.loss.currentText()),
            epochs=self.epochs.value(),
            minutes=self.minutes.value() or None,
            learning_rate=self.learning_rate.value(),
            batch_size=self.batch.value(),
            patch_shape=tuple(b.value() for b in self.patch),
            steps_per_epoch=self.steps.value(),
        ).validate()

    def _model(self) -> Any:
        """The architecture in the form; fields it does not show (depth, pooling...) come from the config it was
        filled with when the architecture is the same, else from the architecture's defaults."""
        from voxelstudio.ml.config import DenoiserConfig

        arch, kernel = self.arch.currentText(), tuple(b.value() for b in self.kernel)
        base = self._base.model if self._base.model.arch == arch else DenoiserConfig.for_arch(arch)
        spacing_input = self.spacing_input.isChecked()
        return dataclasses.replace(
            base, filters=self.filters.value(), kernel=kernel, spacing_input=spacing_input
        ).validate()

    def init_model(self) -> Path | None:
        """The model file training starts from (the bundled denoiser when chosen), None for random weights."""
        return self.from_bundled.init_model()

    def set_device_kind(self, kind: str) -> None:
        """The compute device is known ("GPU" or "CPU"): with the ``auto`` preset, switch to its recipe, unless the
        user has edited the form since it was filled (the probe answers seconds after start-up)."""
        self._device_kind = kind
        if self.preset.currentText() == "auto" and self.preset.resolved(kind) != self._base.preset:
            try:
                untouched = self.config() == self._base
            except ValueError:
                untouched = False
            if untouched:
                self.set_config(self.preset.recipe(kind))

    def set_config(self, config: Any) -> None:
        """Show ``config`` in the widgets; its other fields (preset, mixed precision...) go into :meth:`config`."""
        self._base = config
        self.arch.blockSignals(True)
        self.arch.setCurrentText(config.model.arch)
        self.arch.blockSignals(False)
        self.loss.setCurrentText(config.loss.name)
        self.filters.setValue(config.model.filters)
        for box, value in zip(self.kernel, config.model.kernel, strict=True):
            box.setValue(value)
        self.spacing_input.setChecked(config.model.spacing_input)
        self.epochs.setValue(config.epochs)
        self.minutes.setValue(config.minutes or 0.0)
        self.learning_rate.setValue(config.learning_rate)
        self.batch.setValue(config.batch_size)
        for box, value in zip(self.patch, config.patch_shape, strict=True):
            box.setValue(value)
        self.steps.setValue(config.steps_per_epoch)
        self._model_changed()

    def _model_changed(self) -> None:
        self.from_bundled.follow(self._model())

    def training_data(self) -> TrainingData:
        """The TrainingData the "Training data" box describes; ValueError when folder training lacks a folder."""
        return self.data.training_data()

    def remember(self, config: Any) -> None:
        """Store ``config`` and the training data choice as the next session's defaults."""
        self.settings.setValue(SETTINGS_KEY, config.to_json())
        self.data.remember()
        self.settings.setValue(START_KEYS[0], self.preset.currentText())
        self.settings.setValue(START_KEYS[1], self.from_bundled.wanted)

    def _restore_start(self) -> None:
        preset = str(self.settings.value(START_KEYS[0], "auto"))
        self.preset.setCurrentText(preset if self.preset.findText(preset) >= 0 else "auto")
        self.from_bundled.wanted = bool(self.settings.value(START_KEYS[1], False, type=bool))

    def _saved_config(self, defaults: Any) -> Any:
        text = self.settings.value(SETTINGS_KEY, "")
        if not text:
            return defaults
        try:
            return type(defaults).from_json(str(text)).validate()
        except (ValueError, TypeError, json.JSONDecodeError):
            return defaults  # settings from another version: fall back quietly

    def _adopt_architecture(self, model: Any) -> None:
        """Take ``model``'s architecture (the bundled model's, to start from its weights), shown fields and others."""
        self._base = dataclasses.replace(self._base, model=model)
        self.arch.setCurrentText(model.arch)
        self.filters.setValue(model.filters)
        for box, value in zip(self.kernel, model.kernel, strict=True):
            box.setValue(value)
        self.spacing_input.setChecked(model.spacing_input)
        self._model_changed()

    def _arch_changed(self, arch: str) -> None:
        from voxelstudio.ml.config import DenoiserConfig

        model = DenoiserConfig.for_arch(arch)
        self.filters.setValue(model.filters)
        for box, value in zip(self.kernel, model.kernel, strict=True):
            box.setValue(value)

    # ---------------------------------------------------------------------------------------------- progress
    def training_started(self, config: Any) -> None:
        self.remember(config)
        self._validation_label = "whole volume" if self.data.needs_loaded_pair() else "validation"
        self.plot.set_validation_label(self._validation_label)
        self.plot.clear()
        self.quality.clear()
        self.progress.started("Preparing training data…")
        self._last_step, self._stopped_at = None, None

    def training_progress(self, event: ProgressEvent) -> None:
        """News before the first batch (loading the training pairs)."""
        self.progress.progressed(event)

    def training_step(self, step: TrainingStep) -> None:
        text = f"epoch {step.epoch}/{step.epochs} · step {step.step}/{step.steps} · loss {format_number(step.loss)}"
        if math.isfinite(step.val_loss):
            text += f" · {self._validation_label} {format_number(step.val_loss)}"
        text += f" · ETA {format_duration(step.eta_s)}"
        self.progress.progressed(step, text)
        self._last_step = step
        position = (step.epoch - 1) + step.step / max(step.steps, 1)
        finished_epoch = step.epoch if isinstance(step, EpochResult) and step.validated else None
        self.plot.add(position, step.loss, finished_epoch, step.val_loss)
        if finished_epoch is not None:
            self.quality.add_psnr(finished_epoch, step.val_psnr)

    def training_epoch(self, result: EpochResult) -> None:
        self.training_step(result)

    def preview_quality(self, quality: PreviewQuality) -> None:
        self.quality.add_ratio(quality.epoch, quality.fwhm_ratio, quality.target_fwhm_ratio)

    def training_ended(self, outcome: str) -> None:
        self.progress.ended(outcome, self._result_text if outcome == "finished" else None, self._stopped_at)
        self._result_text, self._stopped_at = None, None

    def training_result(self, result: Any) -> None:
        """Say how training ended: epochs run, why it stopped, the best loss and where the model is."""
        reasons = {
            "epochs": "all epochs done",
            "time": "time budget reached",
            "early_stopping": "no more improvement",
            "cancelled": "stopped",
        }
        step = self._last_step
        if result.stopped_reason == "cancelled" and step is not None and step.epochs:
            # Stopped by the user: say where (the bar stays there, not at 100 %) and what was kept.
            kept = "no model saved" if result.model_path is None else "best model kept (bead positions not measured)"
            self._result_text = f"stopped at epoch {step.epoch}/{step.epochs}, {kept}."
            self._stopped_at = step.fraction
            return
        text = f"{result.epochs_run} epoch(s), {reasons.get(result.stopped_reason, result.stopped_reason)}"
        if math.isfinite(result.best_val_loss):
            text += f"; best loss {format_number(result.best_val_loss)}"
        text += "; no model saved." if result.model_path is None else f"; model {result.model_path.name} kept."
        offset = result.bead_offset
        if offset is not None and offset.corrects:  # where the model puts beads, and the shift it now applies
            text += f" {offset.summary()} {DENOISE_TO_SEE}"
        self._result_text = text

    def set_idle(self, idle: bool, has_pair: bool = True) -> None:
        """Enable Train when no job runs and the chosen data is there (a loaded pair, unless only folders are used)."""
        self._idle, self._has_pair = idle, has_pair
        self._update_train_button()

    def _update_train_button(self) -> None:
        ready = self._idle and (self._has_pair or not self.data.needs_loaded_pair())
        self.train_button.setEnabled(ready)
        self.ready_changed.emit(ready)
