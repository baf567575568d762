"""The one place that starts jobs and writes their results into the document.

Every long operation (loading, training, denoising, deconvolution, metrics, export) runs a Qt-free task function on
a :class:`~voxelstudio.gui.workers.Job`; the classifier jobs start from ``controller.classifiers``
(:mod:`~voxelstudio.gui.classifier_jobs`). Results come back on the GUI thread, where they become document changes.
Jobs run through one :class:`~voxelstudio.gui.workers.JobRunner` (``controller.jobs``): at most one exclusive job at a
time, the compute-device probe beside it, and ``busy_changed(False)`` whatever way a job ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from voxelstudio.core.errors import Cancelled, message_of
from voxelstudio.core.provenance import export_provenance, sidecar_path
from voxelstudio.core.volume import Spacing, Volume, is_constant
from voxelstudio.gui.classifier_jobs import ClassifierJobs
from voxelstudio.gui.document import Document
from voxelstudio.gui.job_handlers import AdaptHandler, JobHandler, TrainingHandler
from voxelstudio.gui.levels import level_note
from voxelstudio.gui.settings import remember_file, remember_folder
from voxelstudio.gui.workers import Job, JobError, JobRunner
from voxelstudio.jobs import work
from voxelstudio.jobs.train import TrainingData


class Controller(QObject):
    """Starts jobs for the window's commands and applies their results to ``document``."""

    status = Signal(str)
    failed = Signal(object)  # JobError, for an error dialog
    device_described = Signal(str)
    device_kind_found = Signal(str)  # "GPU" or "CPU", with the device label
    training_started = Signal(object)  # TrainConfig

    def __init__(
        self, document: Document, settings: QSettings, *, runs_dir: Path, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.settings = settings
        self.runs_dir = Path(runs_dir)
        self.jobs = JobRunner(self)
        self._device_probes = 0
        self.jobs.status.connect(self.status)
        self.jobs.failed.connect(self.failed)
        self.jobs.busy_changed.connect(lambda busy: document.set_running_job(self.jobs.active_name if busy else None))
        # One handler per kind of job; panels connect to their signals once (see Commands).
        self.training = TrainingHandler(document, self)
        self.adaptation = AdaptHandler(document, self)
        self.denoising = JobHandler("Denoising…", self)
        self.classifiers = ClassifierJobs(document, self.jobs, self.status, self._new_run_dir, self)
        self.model_trained = self.training.finished  # TrainResult

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def stop(self) -> None:
        """Ask the running job to stop (training keeps its best checkpoint)."""
        self.jobs.stop()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel every job and wait for its thread; True when all stopped in time."""
        return self.jobs.shutdown(timeout_ms)

    def _new_run_dir(self, kind: str) -> Path:
        """A folder name under ``runs_dir`` for one training run, unused so far (created by the job)."""
        run_dir = self.runs_dir / time.strftime(f"{kind}-%Y%m%d-%H%M%S")
        while run_dir.exists():  # two runs within a second
            run_dir = run_dir.with_name(f"{run_dir.name}+")
        return run_dir

    # ------------------------------------------------------------------------------------------------------- data
    def open_volume(self, path: str | Path, role: str, variable: str | None = None) -> Job | None:
        """Load ``path`` (a chosen ``variable`` of a .mat/.npz) as the ``role`` volume."""
        return self.open_volumes([(Path(path), role, variable)])

    def open_volumes(self, requests: Sequence[tuple[Path, str, str | None]]) -> Job | None:
        """Load each (path, role, variable) in one job (files dropped together: a second job would be refused while
        the first runs); the raw volume is set first, since a new raw volume drops what was made from the old one."""
        from voxelstudio.io import import_readers

        wanted = {role: (Path(path), variable) for path, role, variable in requests}
        if not wanted:
            return None
        if len(wanted) < len(requests):  # two files answered with one role: the last one is opened
            skipped = [Path(path).name for path, role, _ in requests if wanted[role][0] != Path(path)]
            self.status.emit(f"Each role shows one volume: not opening {', '.join(skipped)}.")
        import_readers([path for path, _ in wanted.values()])  # here, not in the worker: see import_readers

        each = len(wanted) > 1  # several files: one that cannot be read does not keep the others from opening

        def loaded(result: Any) -> None:
            found, problems = result if each else (result, [])
            for role in sorted(found, key=lambda r: r != "raw"):
                self._set_loaded(role, found[role])
                remember_file(self.settings, wanted[role][0])
            if problems:  # the files that could be read are shown; the others are named
                self.failed.emit(JobError("opening", "; ".join(problems), ""))

        names = ", ".join(path.name for path, _ in wanted.values())
        return self.jobs.start(f"loading {names}", work.load_volumes(wanted, each=each), JobHandler().arm(loaded))

    def open_level(self, role: str, level: str) -> Job | None:
        """Load another resolution level of the multiscale store the ``role`` volume came from."""
        volume = self.document.volume(role)
        if volume is None or volume.source is None:
            self.status.emit(f"There is no {role} volume from a multiscale store.")
            return None
        return self.open_volume(volume.source, role, level)

    def read_planes(self, request: Any, on_done: Callable[[dict | None], object]) -> Job | None:
        """Read the slice planes of ``request`` (a :class:`~voxelstudio.gui.fine_slices.PlaneRequest`) beside any
        other job; ``on_done(planes)`` on the GUI thread, with None when they could not be read."""
        handler = JobHandler().arm(on_done)
        handler.ended.connect(lambda outcome: on_done(None) if outcome != "finished" else None)
        task = work.read_planes(request.source, request.level, request.index)
        return self.jobs.start("reading a full-resolution slice", task, handler, exclusive=False)

    def open_pair(self, raw_path: str | Path, target_path: str | Path | None = None) -> Job | None:
        """Load a raw volume and, optionally, its target in one job."""
        from voxelstudio.io import import_readers

        paths = {"raw": Path(raw_path)} | ({} if target_path is None else {"target": Path(target_path)})
        import_readers(paths.values())  # here, not in the worker: see import_readers

        load = work.load_volumes({role: (path, None) for role, path in paths.items()})

        def loaded(volumes: dict[str, Volume]) -> None:
            for role, volume in volumes.items():
                self._set_loaded(role, volume)
                remember_file(self.settings, paths[role])

        return self.jobs.start("loading", load, JobHandler().arm(loaded))

    def open_sample(self) -> Job | None:
        from voxelstudio.core.resources import sample_pair_paths

        return self.open_pair(*sample_pair_paths())

    def _set_loaded(self, role: str, volume: Volume) -> None:
        self.document.set_volume(role, volume)
        shapes = {v.shape for r, v in self.document.volumes().items() if r in ("raw", "target")}
        if len(shapes) > 1:
            self.status.emit("Raw and target have different shapes: training and metrics need matching volumes.")
        else:
            self.status.emit(f"Loaded {volume.name} as {role} {volume.shape}{level_note(volume)}.")

    def set_spacing(self, spacing: Spacing) -> None:
        self.document.set_spacing(spacing)

    def export(self, role: str, path: str | Path) -> Job | None:
        """Write the ``role`` volume to ``path`` (format from the suffix) and its provenance to ``path`` + ".json"."""

        volume = self.document.volume(role)
        if volume is None:
            self.status.emit(f"There is no {role} volume to export.")
            return None
        path = Path(path)
        inputs = {r: v.source for r, v in self.document.volumes().items() if v.source is not None}
        provenance = export_provenance(role, volume, self.document.made_by(role), inputs)

        def exported(written: Path) -> None:
            remember_file(self.settings, written)
            self.status.emit(f"Saved the {role} volume to {written} (provenance in {sidecar_path(written).name}).")

        write = work.export_volume(volume, path, provenance)  # once writing starts it finishes: not stoppable
        return self.jobs.start("export", write, JobHandler().arm(exported), stoppable=False)

    # ------------------------------------------------------------------------------------------------------ model
    def detect_device(self) -> Job | None:
        """Describe the compute device of the chosen Keras backend in the background (it imports the framework).
        Only the newest probe's answer is shown: one started before the backend changed is ignored."""
        self._device_probes += 1
        probe = self._device_probes

        def described(device: tuple[str, str]) -> None:
            if probe == self._device_probes:
                self.device_described.emit(device[0])
                self.device_kind_found.emit(device[1])

        compute_device = work.in_child("voxelstudio.jobs.runner:compute_device")

        def describe(report: Any, cancel: Any) -> tuple[str, str]:
            try:
                return compute_device(report, cancel)
            except Cancelled:
                raise
            except Exception as exc:  # a background check: its label says so, no error box (jobs run on the CPU)
                return f"unknown (the check failed: {message_of(exc)})", "CPU"

        return self.jobs.start("device check", describe, JobHandler().arm(described), exclusive=False)

    def gather_environment(self, on_text: Callable[[str], object]) -> Job | None:
        """``voxelstudio doctor``'s report, gathered in the background (it starts a child process per backend and
        takes seconds); ``on_text`` receives the formatted text on the GUI thread."""
        disk = next((p for p in (self.runs_dir, *self.runs_dir.parents) if p.is_dir()), Path.home())

        gather = work.environment(disk, qt_probe="voxelstudio.gui.probe")  # run as a child process, never imported
        return self.jobs.start("environment report", gather, JobHandler().arm(on_text), exclusive=False)

    def train(self, config: Any, data: TrainingData | None = None, init: Path | None = None) -> Job | None:
        """Train a denoiser on ``data`` (default: the loaded raw/target pair, which then also validates: with one
        pair there is no held-out data, so "validation" is the loss on the whole volume rather than on patches).
        Folders of pairs are loaded in the worker process. When the loaded raw volume is the validation volume,
        each epoch's prediction of it replaces the predicted volume (live preview). ``init``: a model file whose
        weights training starts from (the bundled denoiser when the Train tab says so)."""
        data = data or TrainingData()
        raw, target = self.document.volume("raw"), self.document.volume("target")
        loaded = None if raw is None or target is None else (raw, target)
        if data.needs_loaded_pair and loaded is None:
            self.status.emit("Training needs a raw and a target volume.")
            return None
        out = self._new_run_dir("train") / "denoiser.keras"
        given = loaded if data.needs_loaded_pair else None
        train = work.in_child("voxelstudio.jobs.train:train_from_data", make_folder=out.parent, data=data, loaded=given,
                              config=config, out=out, init=init)  # fmt: skip
        job = self.jobs.start(
            "training",
            train,
            lambda: self.training.prepare(raw, data.needs_loaded_pair, self._trained, out=out, on_kept=self._kept),
        )
        if job is not None:
            self.training_started.emit(config)
        return job

    def _trained(self, result: Any) -> None:
        if result.model_path is None:
            self.status.emit("Training stopped before the first epoch ended; no model was saved.")
            return
        self.document.set_model_path(result.model_path)
        how = "stopped" if result.stopped_reason == "cancelled" else "finished"
        self.status.emit(f"Training {how} after {result.epochs_run} epoch(s); best model: {result.model_path}.")

    def _kept(self, model_path: Path) -> None:
        self.document.set_model_path(model_path)
        self.status.emit(f"Training ended early; using the best model it saved: {model_path}.")

    def adapt(
        self, minutes: float, calibration_options: dict[str, Any] | None = None, fine_tune: bool = True
    ) -> Job | None:
        """Adapt the bundled denoiser to the raw volume's microscope (calibrate with ``calibration_options``, as
        ``tasks.adapt.adapt_volumes`` takes them, simulate, fine-tune for ``minutes``, or without ``fine_tune`` only
        correct where it puts beads); the handler makes the adapted model the current one when the job completed."""
        raw = self.document.volume("raw")
        if raw is None or raw.known_spacing is None:
            problem = "open a raw volume first"
            if raw is not None:
                problem = f"{raw.name}: voxel size unknown; set it (µm) in the View tab and adapt again"
            self.failed.emit(JobError("adaptation", problem, ""))
            return None
        out = self._new_run_dir("adapt") / "adapted.keras"
        adapt = work.in_child("voxelstudio.jobs.adapt:adapt_to_volume", make_folder=out.parent, raw=raw, out=out,
                              minutes=float(minutes), calibrate_options=dict(calibration_options or {}),
                              fine_tune=bool(fine_tune))  # fmt: skip
        return self.jobs.start("adaptation", adapt, lambda: self.adaptation.prepare(raw))  # it applies the result

    def load_model(self, path: str | Path) -> Job | None:
        """Check that ``path`` is a usable denoiser (in a worker: it imports TensorFlow), then make it current."""
        path = Path(path)

        def loaded(checked: Path) -> None:
            self.document.set_model_path(checked)
            remember_folder(self.settings, checked)
            self.status.emit(f"Using model {checked.name}.")

        return self.jobs.start("loading model", work.check_model(path), JobHandler().arm(loaded))

    def denoise(self, *, tta: bool = False) -> Job | None:
        """Denoise the raw volume with the current (or bundled) model, then compute metrics if a target exists."""
        raw = self.document.volume("raw")
        if raw is None:
            self.status.emit("Open a raw volume first.")
            return None
        model_path = self.document.model_path

        def denoised(result: Any) -> None:
            self.document.set_volume("prediction", result.prediction, result.provenance)  # drops the old uncertainty
            if result.uncertainty is not None:
                spread = {**result.provenance, "output": "standard deviation over the test-time augmentations"}
                self.document.set_volume("uncertainty", result.uncertainty, spread)
            self.status.emit("Denoised.")

        handler = lambda: self.denoising.arm(denoised, "Denoising…")  # noqa: E731
        denoise = work.denoise(raw, model_path, tta)
        return self.jobs.start("denoising", denoise, handler, then=self._evaluate_if_possible)

    def deconvolve(self, iterations: int = 20) -> Job | None:
        """Richardson–Lucy baseline of the raw volume into the predicted panel."""
        raw = self.document.volume("raw")
        if raw is None:
            self.status.emit("Open a raw volume first.")
            return None
        if raw.known_spacing is None:  # the simulated PSF needs it
            problem = f"{raw.name}: voxel size unknown; set it (µm) in the View tab and deconvolve again"
            self.failed.emit(JobError("deconvolution", problem, ""))
            return None

        def deconvolved(volume: Volume) -> None:
            made_by = {"method": "richardson-lucy", "iterations": iterations, "psf": volume.metadata.get("psf")}
            self.document.set_volume("prediction", volume, made_by)
            self.status.emit(f"Richardson–Lucy deconvolution done ({iterations} iterations).")

        handler = lambda: self.denoising.arm(deconvolved, "Deconvolution…")  # noqa: E731
        deconvolve = work.deconvolve(raw, iterations)
        return self.jobs.start("deconvolution", deconvolve, handler, then=self._evaluate_if_possible)

    def _evaluate_if_possible(self) -> None:
        volumes = self.document.volumes()
        if "target" in volumes and "prediction" in volumes and volumes["target"].shape == volumes["prediction"].shape:
            target = volumes["target"].data
            if target.size and not is_constant(target):  # a blank target has no metrics
                self.evaluate()

    def evaluate(self) -> Job | None:
        """Compare prediction and target (and raw) in a worker; results go to ``document.metrics``."""
        volumes = self.document.volumes()
        if "prediction" not in volumes or "target" not in volumes:
            self.status.emit("Metrics need a predicted and a target volume.")
            return None
        prediction, target, raw = volumes["prediction"], volumes["target"], volumes.get("raw")

        def evaluated(metrics: dict[str, Any]) -> None:
            if self.document.volume("prediction") is prediction:
                self.document.set_metrics(metrics)

        metrics = work.evaluate(prediction, target, raw)
        return self.jobs.start("metrics", metrics, JobHandler().arm(evaluated), stoppable=False)

    def save_model(self, path: str | Path) -> Job | None:
        """Copy the current model file to ``path`` (atomically)."""
        source = self.document.model_path
        if source is None:
            self.status.emit("There is no trained or loaded model to save.")
            return None
        path = Path(path)

        saved = JobHandler().arm(lambda written: self.status.emit(f"Saved model to {written}."))
        return self.jobs.start("saving model", work.copy_file(source, path), saved, stoppable=False)
