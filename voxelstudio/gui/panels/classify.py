"""Classify panel: train a voxel classifier on a class-per-folder data set (Train/Stop, progress, live accuracy) or
search its hyper-parameters (Search: a live table of trials), choose a model, classify the shown volume (probability
bars, Grad-CAM) and evaluate on a data set (confusion)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from voxelstudio.gui.class_plots import AccuracyPlot, ConfusionPlot, ProbabilityBars
from voxelstudio.gui.panels.common import ElidedLabel, ProgressRow, format_duration, format_number
from voxelstudio.gui.trials_table import TrialsTable
from voxelstudio.jobs.events import EpochResult, ProgressEvent, TrainingStep, TrialResult

_REASONS = {"epochs": "all epochs done", "time": "time budget reached", "early_stopping": "no more improvement",
            "cancelled": "stopped"}  # fmt: skip


class ClassifyPanel(QWidget):
    """Emits requests; the controller runs them. Shows the document's classifier (``set_model``: None is the bundled
    one) without keeping it."""

    train_requested = Signal()
    search_requested = Signal()
    stop_requested = Signal()
    classify_requested = Signal()
    evaluate_requested = Signal()
    show_gradcam_requested = Signal()
    choose_folder_requested = Signal()
    choose_model_requested = Signal()
    use_bundled_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from voxelstudio.ml.classifier_config import CLASSIFIER_ARCHITECTURES, GRID_SIZES, ORIENTATIONS

        self.folder = QLineEdit(objectName="dataset_folder", placeholderText="one sub-folder of grids per class")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self.choose_folder_requested)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.arch = QComboBox(objectName="classifier_arch")
        self.arch.addItems(CLASSIFIER_ARCHITECTURES)
        self.width_box = QDoubleSpinBox(
            objectName="classifier_width", minimum=0.05, maximum=4.0, decimals=3, value=0.25
        )
        self.width_box.setSingleStep(0.125)
        self.width_box.setToolTip("Channel multiplier (1 = the paper's network; 0.125–0.25 trains on a CPU)")
        self.grid = QSpinBox(objectName="classifier_grid", minimum=GRID_SIZES[0], maximum=GRID_SIZES[1], value=32)
        self.grid.setSuffix("³")
        self.grid.setToolTip("Input grid size; a data set of grids of one other size is resampled")
        self.orientation = QComboBox(objectName="classifier_orientation")
        self.orientation.addItems(ORIENTATIONS)
        self.orientation.setToolTip(
            "upright: objects share their vertical axis (CAD models): turned about z in training and voting. "
            "any: objects lie at random in 3-D (particles, procedural shapes): each grid is turned onto its "
            "principal axes first"
        )
        self.epochs = QSpinBox(objectName="classifier_epochs", minimum=0, maximum=10_000, value=0)
        self.epochs.setSpecialValueText("until the budget ends")
        self.epochs.setToolTip("Epochs; with a time budget too, whichever ends first")
        self.minutes = QDoubleSpinBox(objectName="classifier_minutes", minimum=0.0, maximum=10_000.0, decimals=1)
        self.minutes.setSpecialValueText("no limit")
        self.minutes.setSuffix(" min")
        self.minutes.setValue(5.0)
        self.trials = QSpinBox(objectName="search_trials", minimum=1, maximum=1000, value=8)
        self.trials.setToolTip("Trials of the hyper-parameter search (Search); they share the time budget")
        form = QFormLayout()
        form.addRow("Data set", folder_row)
        form.addRow("Architecture", self.arch)
        form.addRow("Width", self.width_box)
        form.addRow("Grid", self.grid)
        form.addRow("Orientation", self.orientation)
        form.addRow("Epochs", self.epochs)
        form.addRow("Time budget", self.minutes)
        form.addRow("Search trials", self.trials)
        self.train_button = QPushButton("Train", objectName="classifier_train_button")
        self.train_button.setToolTip("Train a classifier on the data set; the best model becomes the current one")
        self.train_button.clicked.connect(self.train_requested)
        self.search_button = QPushButton("Search", objectName="classifier_search_button")
        self.search_button.setToolTip(
            "Bayesian search (optuna) over learning rate, batch size, dropout and width; the best model by "
            "validation accuracy becomes the current one, and Stop keeps the best so far"
        )
        self.search_button.clicked.connect(self.search_requested)
        self.evaluate_button = QPushButton("Evaluate", objectName="evaluate_button")
        self.evaluate_button.setToolTip("Accuracy and confusion matrix of the current model on the data set")
        self.evaluate_button.clicked.connect(self.evaluate_requested)
        data_buttons = QHBoxLayout()
        data_buttons.addWidget(self.train_button, 1)
        data_buttons.addWidget(self.search_button, 1)
        data_buttons.addWidget(self.evaluate_button, 1)
        data_box = QGroupBox("Data set")
        data_layout = QVBoxLayout(data_box)
        data_layout.addLayout(form)
        data_layout.addLayout(data_buttons)

        self.model_label = ElidedLabel(objectName="classifier_model_label")  # the whole path in its tooltip
        choose = QPushButton("Choose…")
        choose.clicked.connect(self.choose_model_requested)
        bundled = QPushButton("Bundled")
        bundled.setToolTip("Use the bundled classifier of the ten procedural shapes")
        bundled.clicked.connect(self.use_bundled_requested)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_label, 1)
        model_row.addWidget(choose)
        model_row.addWidget(bundled)
        self.rotations = QSpinBox(objectName="vote_rotations", minimum=0, maximum=36, value=0)
        self.rotations.setSpecialValueText("auto")
        self.rotations.setToolTip(
            "Average the prediction over this many views (rotations about the vertical axis, or flips of a model "
            "trained with orientation 'any'). auto: the model's own, as the CLI picks them: the views its training "
            "turned the grids through, as many as its cost on this device allows"
        )
        self.classify_button = QPushButton("Classify shown volume", objectName="classify_button")
        self.classify_button.setToolTip("Classify the raw volume (fitted into the model's grid)")
        self.classify_button.clicked.connect(self.classify_requested)
        self.gradcam_button = QPushButton("Show Grad-CAM", objectName="gradcam_button")
        self.gradcam_button.setToolTip("Where the evidence for the predicted class lies, in the fourth panel")
        self.gradcam_button.clicked.connect(self.show_gradcam_requested)
        use_buttons = QHBoxLayout()
        use_buttons.addWidget(self.classify_button, 1)
        use_buttons.addWidget(self.gradcam_button)
        self.result_label = QLabel("", objectName="classification_label")
        self.result_label.setWordWrap(True)
        model_box = QGroupBox("Model")
        model_form = QFormLayout(model_box)
        model_form.addRow(model_row)
        model_form.addRow("Rotation voting", self.rotations)
        model_form.addRow(use_buttons)
        model_form.addRow(self.result_label)

        self.progress = ProgressRow("Stop", self)
        self.progress.stop_requested.connect(self.stop_requested)
        self.accuracy_plot = AccuracyPlot(self)
        self.bars = ProbabilityBars(self)
        self.confusion = ConfusionPlot(self)
        self.trials_table = TrialsTable(self)
        self.results = QTabWidget(self, objectName="classifier_results")
        self.results.addTab(self.accuracy_plot, "Accuracy")
        self.results.addTab(self.bars, "Probabilities")
        self.results.addTab(self.confusion, "Confusion")
        self.results.addTab(self.trials_table, "Trials")

        layout = QVBoxLayout(self)
        layout.addWidget(data_box)
        layout.addWidget(model_box)
        layout.addWidget(self.progress)
        layout.addWidget(self.results, 1)
        self._result_text: str | None = None
        self._search_trials = 0  # trials of the running search, 0 when none runs
        self._device_kind = "CPU"  # until the device probe says otherwise
        self.set_model(None)
        self.set_idle(True, has_raw=False, has_gradcam=False)

    # ------------------------------------------------------------------------------------------------ inputs
    def set_device_kind(self, kind: str) -> None:
        """The compute device ("GPU" or "CPU"): the recipe behind the widgets follows it, as ``--preset auto``."""
        self._device_kind = kind

    def config(self) -> Any:
        """The ClassifierTrainConfig the widgets describe, on the device's recipe as ``train-classifier --preset
        auto`` builds it (batch size, optimizer and schedule; the width as the box says); validated, ValueError
        names the bad field."""
        import dataclasses

        from voxelstudio.ml.classifier_config import ClassifierTrainConfig
        from voxelstudio.ml.classifier_presets import preset_settings

        arch = self.arch.currentText()
        name, preset = preset_settings(arch, "auto", self._device_kind)
        overrides = {**preset.pop("model"), "width": self.width_box.value(), "input_shape": (self.grid.value(),) * 3,
                     "orientation": self.orientation.currentText()}  # fmt: skip
        config = ClassifierTrainConfig.for_arch(
            arch, model_overrides=overrides, epochs=self.epochs.value() or None, minutes=self.minutes.value() or None,
            **preset,
        )  # fmt: skip
        return dataclasses.replace(config, preset=name).validate()

    def dataset_folder(self) -> Path:
        """The chosen data set folder; ValueError when none is chosen or it is not a folder."""
        text = self.folder.text().strip()
        if not text:
            raise ValueError("choose a data set folder (one sub-folder of grids per class) first")
        if not Path(text).is_dir():
            raise ValueError(f"{text}: no such folder")
        return Path(text)

    def _class_count(self) -> int | None:
        """Class sub-folders of the data set folder (for the chance level), None when unknown."""
        try:
            count = sum(1 for p in self.dataset_folder().iterdir() if p.is_dir() and not p.name.startswith("."))
        except (OSError, ValueError):
            return None
        return count or None

    def chosen_rotations(self) -> int | None:
        """The views to vote over, None for the model's own choice (the box's "auto")."""
        return self.rotations.value() or None

    def set_model(self, path: Path | str | None) -> None:
        self.model_label.setText("Model: bundled" if path is None else f"Model: {Path(path).name}")
        self.model_label.setToolTip("the bundled classifier of ten procedural shapes" if path is None else str(path))

    def set_idle(self, idle: bool, has_raw: bool, has_gradcam: bool) -> None:
        self.train_button.setEnabled(idle)
        self.search_button.setEnabled(idle)
        self.evaluate_button.setEnabled(idle)
        self.classify_button.setEnabled(idle and has_raw)
        self.gradcam_button.setEnabled(has_gradcam)

    # ---------------------------------------------------------------------------------------------- progress
    def job_started(self, text: str) -> None:
        self.progress.started(text)

    def training_started(self, text: str) -> None:
        self.accuracy_plot.clear(self._class_count())
        self.results.setCurrentWidget(self.accuracy_plot)
        self.progress.started(text)

    def search_started(self, text: str) -> None:
        self._search_trials = self.trials.value()
        self.trials_table.clear_trials()
        self.results.setCurrentWidget(self.trials_table)
        self.progress.started(text)

    def add_trial(self, trial: TrialResult) -> None:
        self.trials_table.add_trial(trial)

    def search_step(self, step: TrainingStep) -> None:
        """A step of the running trial (its ``done`` of ``total`` counts the whole search: see
        :func:`voxelstudio.jobs.classify.train_classifier_job`)."""
        trials = max(self._search_trials, 1)
        trial = min(len(self.trials_table.trials) + 1, trials)
        self.progress.progressed(step, f"trial {trial}/{trials} · {_step_text(step)}")

    def job_progress(self, progress: ProgressEvent) -> None:
        self.progress.progressed_with_eta(progress)

    def training_step(self, step: TrainingStep) -> None:
        self.progress.progressed(step, _step_text(step))

    def training_epoch(self, result: EpochResult) -> None:
        self.training_step(result)
        if result.validated:
            self.accuracy_plot.add(result.epoch, result.val_accuracy)

    def job_ended(self, outcome: str) -> None:
        self.progress.ended(outcome, self._result_text if outcome == "finished" else None)
        self._result_text = None
        self._search_trials = 0

    # ----------------------------------------------------------------------------------------------- results
    def training_result(self, result: Any) -> None:
        """Say how training ended; the saved model becomes the current one."""
        text = f"{result.epochs_run} epoch(s), {_REASONS.get(result.stopped_reason, result.stopped_reason)}"
        if result.trials:
            text = f"{len(result.trials)} trial(s), best: {text}"
        if math.isfinite(result.best_val_accuracy):
            text += f"; validation accuracy {result.best_val_accuracy:.1%}"
        if result.test_accuracy is not None:
            text += f", test {result.test_accuracy:.1%}"
        if result.refit_outcome == "done":
            text += f"; refit on all data for {result.refit_epochs} epoch(s)"
        elif result.refit_outcome is not None:
            how = "stopped" if result.refit_outcome == "cancelled" else result.refit_outcome
            text += f"; refit {how}, the validated model is kept"
        if result.model_path is None:
            text += "; no model saved."
        else:
            text += f"; model {result.model_path.name} in use."
        self._result_text = text

    def show_classification(self, result: Any) -> None:
        self.bars.set_probabilities(result.classes, result.probabilities)
        best = max(result.probabilities)
        if result.out_of_domain is None:
            text = f"Most likely: <b>{result.predicted}</b> ({best:.0%}, {result.rotations} rotation(s))"
        else:
            from voxelstudio.ml.classifier_domain import UNLIKE  # Keras-free

            text = (f"<b>{UNLIKE.capitalize()}</b>: {html.escape(result.out_of_domain)}. "
                    f"Closest: {result.predicted} ({best:.0%}).")  # fmt: skip
        self.result_label.setText(text)
        self.results.setCurrentWidget(self.bars)

    def show_evaluation(self, report: dict[str, Any]) -> None:
        title = f"accuracy {report['accuracy']:.1%} on {report['count']} grids"
        self.confusion.set_confusion(report["classes"], report["confusion"], title)
        self._result_text = f"Evaluated: {title} ({report['rotations']} rotation(s))."
        self.results.setCurrentWidget(self.confusion)


def _step_text(step: TrainingStep) -> str:
    """Where training is: epoch (of how many), step, loss, validation accuracy and time left."""
    epochs = f"/{step.epochs}" if step.epochs else ""  # none when training until the time budget ends
    text = f"epoch {step.epoch}{epochs} · step {step.step}/{step.steps} · loss {format_number(step.loss)}"
    if math.isfinite(step.val_accuracy):
        text += f" · validation {step.val_accuracy:.1%}"
    return text + f" · ETA {format_duration(step.eta_s)}"
