"""The Classify tab's commands: train, search, evaluate and classify with the chosen classifier, Grad-CAM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voxelstudio.gui import dialogs
from voxelstudio.gui.settings import last_folder

if TYPE_CHECKING:
    from voxelstudio.gui.commands import Commands


class ClassifyCommands:
    """Connects the Classify panel to the controller; errors go to the window's error dialog."""

    def __init__(self, commands: Commands) -> None:
        self.commands = commands
        self.window, self.controller, self.document = commands.window, commands.controller, commands.document
        self.view, self.settings = commands.view, commands.settings
        self._connect()

    def _connect(self) -> None:
        panel, c = self.window.classify_panel, self.controller
        panel.stop_requested.connect(c.stop)
        panel.train_requested.connect(self.train_classifier)
        panel.search_requested.connect(lambda: self.train_classifier(search=True))
        panel.evaluate_requested.connect(self.evaluate_classifier)
        panel.classify_requested.connect(
            lambda: c.classifiers.classify(self.document.classifier_path, panel.chosen_rotations())
        )
        panel.use_bundled_requested.connect(lambda: self.document.set_classifier_path(None))
        self.document.classifier_changed.connect(panel.set_model)
        panel.show_gradcam_requested.connect(self.show_gradcam)
        panel.choose_folder_requested.connect(self.choose_dataset_folder)
        panel.choose_model_requested.connect(self.choose_classifier)

    def train_classifier(self, search: bool = False) -> None:
        """Train (or, with ``search``, search the hyper-parameters of) a classifier as the Classify tab says."""
        panel = self.window.classify_panel
        try:
            folder, config = panel.dataset_folder(), panel.config()
        except ValueError as exc:
            self.commands._fail(f"classifier {'search' if search else 'training'} setup", exc)
            return
        self.controller.classifiers.train(folder, config, panel.trials.value() if search else 0)

    def evaluate_classifier(self) -> None:
        panel = self.window.classify_panel
        try:
            folder = panel.dataset_folder()
        except ValueError as exc:
            self.commands._fail("classifier evaluation", exc)
            return
        self.controller.classifiers.evaluate(folder, self.document.classifier_path, panel.chosen_rotations())

    def show_gradcam(self) -> None:
        """Show the Grad-CAM heat map in the fourth panel, on a fixed 0–1 scale."""
        self.view.set_clim("gradcam", (0.0, 1.0))
        self.view.update(extra_panel="gradcam")

    def choose_dataset_folder(self) -> None:
        panel = self.window.classify_panel
        folder = dialogs.get_folder(
            self.window, "Choose a data set folder", panel.folder.text() or last_folder(self.settings)
        )
        if folder:
            panel.folder.setText(folder)

    def choose_classifier(self) -> None:
        path = dialogs.get_open_path(
            self.window, "Choose a classifier", last_folder(self.settings), dialogs.MODEL_FILTER
        )
        if path:
            self.document.set_classifier_path(path)
