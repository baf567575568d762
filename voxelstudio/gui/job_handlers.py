"""One handler object per kind of job: it receives that job's typed events on the GUI thread and passes them on.

The :class:`~voxelstudio.gui.workers.JobRunner` calls ``on_started``, then, for every
:mod:`~voxelstudio.jobs.events` event, the method the event's type names (``on_progress``, ``on_epoch``,
``on_preview``, ``on_result``, ``on_failed``, ``on_cancelled``...), and ``on_ended`` last, however the job ended.
A handler applies results to the document through the callback it was armed with and re-emits news as Qt signals
that panels connect to once (as napari's named events): nothing routes on a job's name or parses message text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from voxelstudio.gui.document import Document
from voxelstudio.jobs.events import (
    CalibrationFound,
    EpochResult,
    JobCancelled,
    JobFailed,
    JobResult,
    Preview,
    PreviewQuality,
    ProgressEvent,
    TrainingStep,
    TrialResult,
)

ResultFn = Callable[[Any], object]


class JobHandler(QObject):
    """Receives one kind of job's events. ``arm`` sets what the next run shows when it starts and what it does with
    its result; ``started``, ``progressed``, ``finished`` and ``ended`` tell the panels."""

    started = Signal(str)  # what to show while it runs
    progressed = Signal(object)  # ProgressEvent (TrainingStep and EpochResult too, unless a subclass takes them)
    finished = Signal(object)  # the job's result, after it was applied
    ended = Signal(str)  # "finished" | "failed" | "cancelled"

    def __init__(self, start_text: str = "Working…", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.start_text = start_text
        self._on_result: ResultFn | None = None

    def arm(self, on_result: ResultFn | None = None, start_text: str | None = None) -> JobHandler:
        """Prepare for the next run; returns self (to hand to JobRunner.start)."""
        self._on_result = on_result
        if start_text is not None:
            self.start_text = start_text
        return self

    def on_started(self) -> None:
        self.started.emit(self.start_text)

    def on_progress(self, event: ProgressEvent) -> None:
        self.progressed.emit(event)

    def on_result(self, event: JobResult) -> None:
        if self._on_result is not None:
            self._on_result(event.value)
        self.finished.emit(event.value)

    def on_failed(self, event: JobFailed) -> None:
        """The runner shows the error dialog; subclasses undo what a failed run left behind."""

    def on_cancelled(self, event: JobCancelled) -> None:
        """Nothing to undo by default."""

    def on_ended(self, outcome: str) -> None:
        self.ended.emit(outcome)


def show_preview(document: Document, raw: Any, event: Preview, method: str) -> Any:
    """Put a preview of ``raw``'s prediction into the predicted panel, while ``raw`` is still the loaded raw volume
    (and the preview has its shape); returns the volume shown, or None."""
    if raw is None or document.volume("raw") is not raw or event.array.shape != raw.shape:
        return None
    name = f"preview, epoch {event.epoch}"
    preview = raw.replace(data=event.array, name=name, source=None, metadata={"preview": event.epoch})
    document.set_volume("prediction", preview, {"method": method, "epoch": event.epoch})
    return preview


def take_back_preview(document: Document, shown: Any) -> None:
    """Remove a preview that belongs to no model (its run failed or was not kept) from the predicted panel."""
    if shown is not None and document.volume("prediction") is shown:
        document.set_volume("prediction", None)


class TrainingHandler(JobHandler):
    """Denoiser training: steps and epoch results for the plots, each preview into the predicted panel (when it
    predicts the loaded raw volume), its measured quality, the result. A run that ends without a result (it failed,
    or did not stop within the runner's grace period) hands on the best model it saved, else removes its preview."""

    step = Signal(object)  # TrainingStep
    epoch = Signal(object)  # EpochResult
    preview_quality = Signal(object)  # PreviewQuality

    def __init__(self, document: Document, parent: QObject | None = None):
        super().__init__("Preparing training data…", parent)
        self.document = document
        self._raw = None
        self._shows_preview = False
        self._shown: Any = None  # the last preview this run put into the document
        self._out: Path | None = None
        self._on_kept: Callable[[Path], None] | None = None

    def prepare(
        self,
        raw: Any,
        shows_preview: bool,
        on_result: ResultFn,
        *,
        out: Path | None = None,
        on_kept: Callable[[Path], None] | None = None,
    ) -> TrainingHandler:
        """``raw`` is the loaded raw volume; previews replace the prediction only when ``shows_preview``. ``out``
        is where the run saves its best model (written whole at every improvement), which ``on_kept`` receives
        when the run is ended without a result."""
        self._raw, self._shows_preview, self._shown = raw, shows_preview, None
        self._out, self._on_kept = out, on_kept
        self.arm(on_result)
        return self

    def on_step(self, event: TrainingStep) -> None:
        self.step.emit(event)

    def on_epoch(self, event: EpochResult) -> None:
        self.epoch.emit(event)

    def on_preview(self, event: Preview) -> None:
        if self._shows_preview:
            self._shown = show_preview(self.document, self._raw, event, "training preview") or self._shown

    def on_preview_quality(self, event: PreviewQuality) -> None:
        self.preview_quality.emit(event)

    def on_result(self, event: JobResult) -> None:
        offset = getattr(event.value, "bead_offset", None)
        if offset is not None and offset.corrects:  # the model now moves scans first; the preview is the network's
            take_back_preview(self.document, self._shown)
            self._shown = None
        super().on_result(event)

    def on_failed(self, event: JobFailed) -> None:
        """A run that failed after saving a best model (it diverged, ran out of memory) hands that model on, as its
        message says it is kept; a preview of one that saved none belongs to no model and is taken back."""
        self._keep_saved_model()

    def on_cancelled(self, event: JobCancelled) -> None:
        self._keep_saved_model()

    def _keep_saved_model(self) -> None:
        if self._out is not None and self._out.is_file() and self._on_kept is not None:
            self._on_kept(self._out)
        else:
            take_back_preview(self.document, self._shown)
            self._shown = None


class ClassifierTrainingHandler(JobHandler):
    """Classifier training: steps for the progress line, validated epochs for the accuracy plot, the result."""

    step = Signal(object)  # TrainingStep
    epoch = Signal(object)  # EpochResult

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("Loading the data set…", parent)

    def on_step(self, event: TrainingStep) -> None:
        self.step.emit(event)

    def on_epoch(self, event: EpochResult) -> None:
        self.epoch.emit(event)


class ClassifierSearchHandler(ClassifierTrainingHandler):
    """A classifier's hyper-parameter search: each trial's steps, and each finished trial for the trials table."""

    trial = Signal(object)  # TrialResult

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.start_text = "Loading the data set for the search…"

    def on_trial(self, event: TrialResult) -> None:
        self.trial.emit(event)


class AdaptHandler(JobHandler):
    """Adapting the denoiser to the raw volume: calibration stages as progress, the calibration it found, the
    fine-tuning's steps, each epoch's prediction of the raw volume in the predicted panel (live, as training shows
    it), and the result: its model becomes the current one only when the fine-tuning completed (a stopped or failed
    adaptation leaves the current model as it was, and takes its preview back)."""

    step = Signal(object)  # TrainingStep or EpochResult of the fine-tuning
    calibrated = Signal(object)  # CalibrationFound

    def __init__(self, document: Document, parent: QObject | None = None) -> None:
        super().__init__("Calibrating on the raw volume…", parent)
        self.document = document
        self._raw: Any = None
        self._shown: Any = None

    def prepare(self, raw: Any) -> AdaptHandler:
        """``raw`` is the volume being adapted to: its previews go to the predicted panel while it is loaded."""
        self._raw, self._shown = raw, None
        self.arm()
        return self

    def on_preview(self, event: Preview) -> None:
        self._shown = show_preview(self.document, self._raw, event, "adaptation preview") or self._shown

    def on_result(self, event: JobResult) -> None:
        if event.value.completed:
            self.document.set_model_path(event.value.model_path)
        if not event.value.completed or event.value.corrected:  # a corrected model moves scans before its network
            take_back_preview(self.document, self._shown)
        super().on_result(event)

    def on_failed(self, event: JobFailed) -> None:
        take_back_preview(self.document, self._shown)

    def on_cancelled(self, event: JobCancelled) -> None:
        take_back_preview(self.document, self._shown)

    def on_step(self, event: TrainingStep) -> None:
        self.step.emit(event)

    def on_calibration(self, event: CalibrationFound) -> None:
        self.calibrated.emit(event)
