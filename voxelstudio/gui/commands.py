"""Wires the window's actions and panels to the controller, and runs the commands that need a dialog first
(choose a file, a variable, a role). Every failure ends in a readable dialog; nothing here blocks on a job.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QSignalBlocker

from voxelstudio.core.errors import VoxelStudioError
from voxelstudio.gui import dialogs
from voxelstudio.gui.actions import update_enabled
from voxelstudio.gui.classify_commands import ClassifyCommands
from voxelstudio.gui.controller import Controller
from voxelstudio.gui.document import Document
from voxelstudio.gui.fine_slices import FinePlanes
from voxelstudio.gui.image_files import save_image
from voxelstudio.gui.main_window import MainWindow
from voxelstudio.gui.naming import export_name
from voxelstudio.gui.panels.common import show_fraction
from voxelstudio.gui.settings import last_folder, recent_files, remember_folder
from voxelstudio.gui.view_state import ViewState
from voxelstudio.gui.workers import JobError

_VARIABLE_FORMATS = (".mat", ".npz")


class Commands(QObject):
    """The behaviour behind the window's actions."""

    def __init__(
        self, window: MainWindow, controller: Controller, document: Document, view: ViewState, settings: QSettings
    ) -> None:
        super().__init__(window)
        self.window, self.controller, self.document, self.view, self.settings = (
            window,
            controller,
            document,
            view,
            settings,
        )
        self._environment_dialog: dialogs.EnvironmentDialog | None = None
        self._environment_job = None
        self._connect_actions()
        self._connect_panels()
        self._connect_feedback()
        self.update_actions()

    # ------------------------------------------------------------------------------------------------- wiring
    def _connect_actions(self) -> None:
        c, w = self.controller, self.window
        handlers = {
            "open": lambda: self.open_file(None),
            "open_raw": lambda: self.open_file("raw"),
            "open_target": lambda: self.open_file("target"),
            "open_sample": c.open_sample,
            "export_prediction": lambda: self.export("prediction"),
            "export_raw": lambda: self.export("raw"),
            "export_target": lambda: self.export("target"),
            "export_uncertainty": lambda: self.export("uncertainty"),
            "screenshot": self.save_screenshot,
            "quit": w.close,
            "load_model": self.load_model,
            "save_model": self.save_model,
            "use_default_model": lambda: self.document.set_model_path(None),
            "train": self.train,
            "denoise": lambda: self.controller.denoise(tta=w.denoise_panel.tta.isChecked()),
            "deconvolve": lambda: self.controller.deconvolve(w.denoise_panel.iterations.value()),
            "evaluate": c.evaluate,
            "stop": c.stop,
            "reset_camera": w.viewports.reset_camera,
            "undo": self.view.undo,
            "redo": self.view.redo,
            "environment": self.show_environment,
            "about": self.about,
        }
        for key, handler in handlers.items():
            w.action_map[key].triggered.connect(lambda _checked=False, h=handler: h())
        w.action_map["show_residual"].toggled.connect(
            lambda on: self.view.update(extra_panel="residual" if on else "none")
        )
        self.view.changed.connect(self._check_residual_action)
        w.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        w.files_dropped.connect(self.open_paths)

    def _check_residual_action(self, aspect: str) -> None:
        """View > Show Residual Panel checked exactly when the fourth panel shows the residual, whoever changed it
        (the View tab's box, Show uncertainty, Show Grad-CAM)."""
        if aspect == "layout":
            with QSignalBlocker(self.window.action_map["show_residual"]):
                self.window.action_map["show_residual"].setChecked(self.view.extra_panel == "residual")

    def _connect_panels(self) -> None:
        w, c = self.window, self.controller
        w.train_panel.train_requested.connect(lambda _config: self.train())
        w.train_panel.ready_changed.connect(w.action_map["train"].setEnabled)
        w.train_panel.stop_requested.connect(c.stop)
        w.train_panel.choose_folder_requested.connect(self.choose_training_folder)
        w.train_panel.adapt.adapt_requested.connect(c.adapt)
        w.train_panel.adapt.stop_requested.connect(c.stop)
        w.train_panel.adapt.choose_file_requested.connect(self.choose_adapt_file)
        w.denoise_panel.denoise_requested.connect(lambda tta: c.denoise(tta=tta))
        w.denoise_panel.deconvolve_requested.connect(c.deconvolve)
        w.denoise_panel.cancel_requested.connect(c.stop)
        w.denoise_panel.load_model_requested.connect(self.load_model)
        w.denoise_panel.show_uncertainty_requested.connect(lambda: self.view.update(extra_panel="uncertainty"))
        w.metrics_panel.compute_requested.connect(c.evaluate)
        w.metrics_panel.save_csv_requested.connect(self.save_metrics)
        w.view_panel.spacing_requested.connect(c.set_spacing)
        w.view_panel.level_requested.connect(c.open_level)
        w.slices.line_drawn.connect(self.show_profile)
        self.fine_planes = FinePlanes(c.read_planes, w.slices.show_fine_planes, self)
        w.slices.planes_wanted.connect(self.fine_planes.want)
        w.view_panel.reset_camera_requested.connect(w.viewports.reset_camera)
        self.classify_commands = ClassifyCommands(self)

    def _connect_feedback(self) -> None:
        w, c, jobs = self.window, self.controller, self.controller.jobs
        c.status.connect(lambda text: w.statusBar().showMessage(text, 10_000))
        c.failed.connect(self.show_job_error)
        c.device_described.connect(lambda text: w.device_label.setText(f"device: {text}"))
        c.device_kind_found.connect(w.train_panel.set_device_kind)
        c.device_kind_found.connect(w.classify_panel.set_device_kind)
        w.backend_box.backend_chosen.connect(self.backend_chosen)
        c.training_started.connect(w.train_panel.training_started)
        self._connect_job_handlers()
        self.document.job_changed.connect(lambda _job: self.update_actions())
        jobs.job_started.connect(self._job_started)
        jobs.job_event.connect(self._job_event)
        jobs.job_ended.connect(lambda _name, _outcome: self._job_ended())
        self.document.volume_changed.connect(lambda _role: self.update_actions())
        self.document.model_changed.connect(lambda path: (w.denoise_panel.set_model(path), self.update_actions()))
        self.document.metrics_changed.connect(w.metrics_panel.set_metrics)
        self.view.changed.connect(lambda _aspect: self._update_undo_actions())

    def update_actions(self) -> None:
        """Enable what makes sense now (a finished, failed or cancelled job always lands here)."""
        idle = self.document.running_job is None
        conditions = set(self.document.volumes()) | {"idle" if idle else "busy"}
        if self.controller.jobs.can_stop:
            conditions.add("stoppable")
        if self.document.model_path is not None:
            conditions.add("model")
        conditions |= self._history_conditions()
        update_enabled(self.window.action_map, conditions)  # before the panels: Train's set_idle refines Ctrl+T
        has_raw, has_pair = "raw" in conditions, {"prediction", "target"} <= conditions
        self.window.train_panel.set_idle(idle, has_raw and "target" in conditions)
        self.window.train_panel.adapt.set_ready(idle and has_raw)
        self.window.denoise_panel.set_idle(idle, has_raw)
        self.window.denoise_panel.set_has_uncertainty("uncertainty" in conditions)
        self.window.metrics_panel.set_enabled_for(idle, has_pair)
        self.window.view_panel.set_idle(idle)
        self.window.classify_panel.set_idle(idle, has_raw, "gradcam" in conditions)

    def _history_conditions(self) -> set[str]:
        history = self.view.history
        return {name for name, holds in (("can_undo", history.can_undo), ("can_redo", history.can_redo)) if holds}

    def _update_undo_actions(self) -> None:
        """Only Undo and Redo follow view changes (cheap: the cursor moves often)."""
        conditions = self._history_conditions()
        self.window.action_map["undo"].setEnabled("can_undo" in conditions)
        self.window.action_map["redo"].setEnabled("can_redo" in conditions)

    def _connect_job_handlers(self) -> None:
        """Each panel listens to the handlers of the jobs it shows (one handler per kind of job)."""
        c, train, denoise, classify = self.controller, self.window.train_panel, self.window.denoise_panel, \
            self.window.classify_panel  # fmt: skip
        c.training.progressed.connect(train.training_progress)
        c.training.step.connect(train.training_step)
        c.training.epoch.connect(train.training_epoch)
        c.training.preview_quality.connect(train.preview_quality)
        c.training.finished.connect(train.training_result)
        c.training.ended.connect(train.training_ended)
        train.adapt.show_job(c.adaptation)
        c.denoising.started.connect(denoise.job_started)
        c.denoising.progressed.connect(denoise.job_progress)
        c.denoising.ended.connect(denoise.job_ended)
        jobs = c.classifiers
        jobs.training.started.connect(classify.training_started)
        jobs.training.step.connect(classify.training_step)
        jobs.training.epoch.connect(classify.training_epoch)
        jobs.training.finished.connect(classify.training_result)
        jobs.search.started.connect(classify.search_started)
        jobs.search.step.connect(classify.search_step)
        jobs.search.epoch.connect(classify.search_step)
        jobs.search.trial.connect(classify.add_trial)
        jobs.search.finished.connect(classify.training_result)
        jobs.evaluation.finished.connect(classify.show_evaluation)
        jobs.classification.finished.connect(classify.show_classification)
        for handler in jobs.handlers:
            if handler not in (jobs.training, jobs.search):
                handler.started.connect(classify.job_started)
            handler.progressed.connect(classify.job_progress)
            handler.ended.connect(classify.job_ended)

    def _job_started(self, job) -> None:
        if job.exclusive:  # a background read during a training must not hide or reset the training's bar
            self.window.job_bar.setVisible(True)
            self.window.job_bar.setRange(0, 0)

    def _job_event(self, event) -> None:
        fraction = getattr(event, "fraction", None)
        if fraction is not None:
            show_fraction(self.window.job_bar, fraction)

    def _job_ended(self) -> None:
        if not self.controller.busy:
            self.window.job_bar.setVisible(False)

    def backend_chosen(self, name: str) -> None:
        """A new backend applies to the next job (a running one keeps its own); probe its device for the label."""
        label = self.window.backend_box.currentText()
        self.window.device_label.setText(f"device: {label}, checking…")
        job = self.document.running_job
        running = f" ({job} keeps its backend)" if job else ""
        self.window.statusBar().showMessage(f"Jobs from now on run on {label}{running}.", 10_000)
        self.controller.detect_device()

    def show_job_error(self, error: JobError) -> None:
        dialogs.show_error(self.window, f"{error.job.capitalize()} failed", error.message, error.details)

    def _fail(self, title: str, exc: BaseException) -> None:
        self.show_job_error(JobError.from_exception(title, exc))

    # ------------------------------------------------------------------------------------------------ commands
    def open_file(self, role: str | None) -> None:
        title = {"raw": "Open raw volume", "target": "Open target volume"}.get(role or "", "Open volume")
        path = dialogs.get_open_path(self.window, title, last_folder(self.settings), dialogs.VOLUME_FILTER)
        if path:
            self.open_path(path, role)

    def open_path(self, path: str | Path, role: str | None) -> None:
        """Open ``path`` as ``role`` (asking raw or target when None, and which array when a file holds several)."""
        self.open_paths([path], role)

    def open_paths(self, paths: list[str | Path], role: str | None = None) -> None:
        """Ask what each file is (and which of its arrays), then load them all in one job."""
        if self.document.running_job is not None:
            self.window.statusBar().showMessage(f"Wait for {self.document.running_job} to finish, or stop it.", 10_000)
            return
        requests = []
        for path in map(Path, paths):
            request = self._ask(path, role)
            if request is not None:
                requests.append(request)
        self.controller.open_volumes(requests)

    def _ask(self, path: Path, role: str | None) -> tuple[Path, str, str | None] | None:
        """(path, role, variable) as the user answers; None when they cancel or the file cannot be listed."""
        role = role or dialogs.ask_role(self.window, path)
        if role is None:
            return None
        variable = None
        if path.suffix.lower() in _VARIABLE_FORMATS:
            from voxelstudio.io import list_variables

            try:
                volumes = [info for info in list_variables(path) if info.is_volume]
            except (VoxelStudioError, OSError, ValueError) as exc:
                self._fail(f"opening {path.name}", exc)
                return None
            if len(volumes) > 1:
                variable = dialogs.pick_variable(self.window, path, volumes)
                if variable is None:
                    return None
        return path, role, variable

    def _fill_recent_menu(self) -> None:
        menu = self.window.recent_menu
        menu.clear()
        for path in recent_files(self.settings):
            menu.addAction(Path(path).name, lambda p=path: self.open_path(p, None)).setToolTip(path)
        menu.setEnabled(not menu.isEmpty())

    def export(self, role: str) -> None:
        volume = self.document.volume(role)
        if volume is None:
            return
        name = export_name(volume.name, role, self.document.made_by(role))
        suggested = str(Path(last_folder(self.settings)) / name)
        path = dialogs.get_save_path(self.window, f"Export {role} volume", suggested, dialogs.EXPORT_FILTER)
        if path:
            self.controller.export(role, path)

    def show_profile(self, volume, start, end) -> None:
        """A line was dragged on a slice view of ``volume``: profile every volume of its shape along it."""
        if volume is None:
            return
        self.window.profile_panel.show_line(self.document.volumes(), volume.shape, start, end)
        if not self.window.profile_panel.isVisible():
            self.window.tabs.setCurrentWidget(self.window.profile_panel)

    def save_metrics(self) -> None:
        """Metrics > Save CSV: the table as shown, written atomically."""
        from voxelstudio.core.atomic import write_atomically

        prediction = self.document.volume("prediction")
        stem = export_name(prediction.name, "prediction", self.document.made_by("prediction"), "") if prediction else ""
        suggested = str(Path(last_folder(self.settings)) / f"{stem or 'metrics'}_metrics.csv")
        path = dialogs.get_save_path(self.window, "Save metrics", suggested, dialogs.CSV_FILTER)
        if not path:
            return
        text = self.window.metrics_panel.as_text(",")
        try:
            written = write_atomically(Path(path), lambda temporary: temporary.write_text(text), overwrite=True)
        except (VoxelStudioError, OSError) as exc:
            self._fail("saving metrics", exc)
            return
        remember_folder(self.settings, written)
        self.window.statusBar().showMessage(f"Saved the metrics to {written}.", 10_000)

    def save_screenshot(self) -> None:
        suggested = str(Path(last_folder(self.settings)) / "voxelstudio.png")
        path = dialogs.get_save_path(self.window, "Save screenshot", suggested, dialogs.IMAGE_FILTER)
        if path:
            self.write_screenshot(path)

    def write_screenshot(self, path: str | Path) -> bool:
        """Save the 3-D panels as a PNG (atomically: never half an image); False (after an error dialog) when it
        could not be written."""
        try:
            save_image(self.window.viewports.grab_panels(), Path(path))
        except VoxelStudioError as exc:
            self._fail("screenshot", exc)
            return False
        self.window.statusBar().showMessage(f"Saved screenshot {path}.", 10_000)
        return True

    def load_model(self) -> None:
        path = dialogs.get_open_path(self.window, "Load model", last_folder(self.settings), dialogs.MODEL_FILTER)
        if path:
            self.controller.load_model(path)

    def save_model(self) -> None:
        suggested = str(Path(last_folder(self.settings)) / "denoiser.keras")
        path = dialogs.get_save_path(self.window, "Save model", suggested, dialogs.MODEL_FILTER)
        if path:
            self.controller.save_model(path)

    def train(self) -> None:
        try:
            config, data = self.window.train_panel.config(), self.window.train_panel.training_data()
        except ValueError as exc:
            self._fail("training setup", exc)
            return
        self.window.tabs.setCurrentWidget(self.window.train_panel)
        self.controller.train(config, data, self.window.train_panel.init_model())

    def choose_training_folder(self, role: str) -> None:
        data = self.window.train_panel.data
        current = data.folder(role)
        folder = dialogs.get_folder(self.window, f"Choose the {role} folder", current or last_folder(self.settings))
        if folder:
            data.set_folder(role, folder)

    def choose_adapt_file(self, role: str) -> None:
        """Ask for the dark stack or measured PSF that Adapt gives the calibration."""
        box = self.window.train_panel.adapt
        what = {"dark": "a dark stack (recorded with no light)", "psf": "a measured PSF stack"}[role]
        current = box.files[role].path
        folder = str(Path(current).parent) if current else last_folder(self.settings)
        path = dialogs.get_open_path(self.window, f"Choose {what}", folder, dialogs.VOLUME_FILTER)
        if path:
            box.set_file(role, path)

    def show_environment(self) -> None:
        """Help > Environment: show the dialog at once and fill it when the report has been gathered."""
        dialog = self._environment_dialog
        if dialog is None:
            dialog = self._environment_dialog = dialogs.EnvironmentDialog(self.window)
        if self._environment_job is None:
            dialog.gathering()
            self._environment_job = self.controller.gather_environment(dialog.show_report)
            self._environment_job.done.connect(self._environment_gathered)
        dialog.show()
        dialog.raise_()

    def _environment_gathered(self) -> None:
        self._environment_job = None
        dialog = self._environment_dialog
        if dialog is not None and not dialog.copy_button.isEnabled():
            dialog.show_report("The environment report could not be gathered (see the error message).")

    def about(self) -> None:
        from voxelstudio import __version__

        dialogs.show_info(
            self.window,
            "About VoxelStudio",
            f"VoxelStudio {__version__}\n\nView 3-D microscope volumes and clean them with deep learning.",
        )
