"""The Classify tab's jobs: train or search a classifier, evaluate one on a data set, classify the raw volume."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, SignalInstance

from voxelstudio.gui.document import Document
from voxelstudio.gui.job_handlers import ClassifierSearchHandler, ClassifierTrainingHandler, JobHandler
from voxelstudio.gui.workers import Job, JobRunner
from voxelstudio.jobs import work


class ClassifierJobs(QObject):
    """Starts the classifier jobs on the controller's ``jobs`` runner; one handler per kind of job, whose signals the
    Classify panel connects to once (see Commands)."""

    def __init__(
        self,
        document: Document,
        jobs: JobRunner,
        status: SignalInstance,
        new_run_dir: Callable[[str], Path],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document, self.jobs, self.status, self._new_run_dir = document, jobs, status, new_run_dir
        self.training = ClassifierTrainingHandler(self)
        self.search = ClassifierSearchHandler(self)
        self.evaluation = JobHandler("Evaluating…", self)
        self.classification = JobHandler("Classifying…", self)
        self.trained = self.training.finished  # ClassifierTrainResult
        self.evaluated = self.evaluation.finished  # evaluation report dict
        self.classified = self.classification.finished  # VolumeClassification

    @property
    def handlers(self) -> tuple[JobHandler, ...]:
        return (self.training, self.search, self.evaluation, self.classification)

    def train(self, folder: str | Path, config: Any, trials: int = 0) -> Job | None:
        """Train a voxel classifier on a class-per-folder data set (``trials`` > 0: search its hyper-parameters,
        each finished trial to ``search.trial``); the result goes to the handler's ``finished``."""
        run_dir = self._new_run_dir("search" if trials else "classify")
        train = work.in_child("voxelstudio.jobs.classify:train_classifier_job", folder=Path(folder), config=config,
                              out=run_dir / "classifier.keras", trials=trials)  # fmt: skip

        def trained(result: Any) -> None:
            if result.model_path is not None:
                self.document.set_classifier_path(result.model_path)
            how = "stopped" if result.stopped_reason == "cancelled" else "finished"
            saved = "no model was saved" if result.model_path is None else f"best model: {result.model_path}"
            run = f"Search ({len(result.trials)} trial(s))" if trials else "Classifier training"
            self.status.emit(f"{run} {how} after {result.epochs_run} epoch(s); {saved}.")

        handler = self.search if trials else self.training
        return self.jobs.start("classifier search" if trials else "classifier training", train,
                               lambda: handler.arm(trained))  # fmt: skip

    def evaluate(self, folder: str | Path, model_path: Path | None, rotations: int | None) -> Job | None:
        """Accuracy and confusion matrix of a classifier (None: the bundled one) on a data set."""
        evaluate = work.in_child("voxelstudio.tasks.classify:evaluate_classifier", folder=Path(folder),
                                 model_path=model_path, rotations=rotations)  # fmt: skip

        def evaluated(report: dict[str, Any]) -> None:
            self.status.emit(f"Classifier accuracy {report['accuracy']:.1%} on {report['count']} grids.")

        return self.jobs.start("classifier evaluation", evaluate, lambda: self.evaluation.arm(evaluated))

    def classify(self, model_path: Path | None, rotations: int | None) -> Job | None:
        """Classify the raw volume; its Grad-CAM heat map becomes the "gradcam" volume."""
        raw = self.document.volume("raw")
        if raw is None:
            self.status.emit("Open a raw volume first.")
            return None

        classify = work.in_child("voxelstudio.tasks.classify:classify_with_heatmap", volume=raw, model_path=model_path,
                                 rotations=rotations)  # fmt: skip

        def classified(result: Any) -> None:
            if self.document.volume("raw") is raw:
                made_by = {"method": "grad-cam", "model": result.model, "class": result.predicted,
                           "layer": result.layer}  # fmt: skip
                self.document.set_volume("gradcam", result.heatmap, made_by)
            best = f"{result.predicted} ({max(result.probabilities):.0%})"
            if result.out_of_domain is None:
                self.status.emit(f"{raw.name}: most likely {best}.")
            else:
                from voxelstudio.ml.classifier_domain import UNLIKE  # Keras-free

                self.status.emit(f"{raw.name}: {UNLIKE}; closest {best}.")

        return self.jobs.start("classification", classify, lambda: self.classification.arm(classified))
