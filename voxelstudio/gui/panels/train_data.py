"""The Train tab's "Training data" box: train on the loaded raw/target pair or on folders of pairs matched by file
name (validating on the loaded pair or on pairs held out of the folders); remembered for the next session."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit, QPushButton, QWidget

from voxelstudio.jobs.train import TrainingData

DATA_KEYS = ("training/source", "training/raw_folder", "training/target_folder", "training/validate_on_loaded")
SOURCES = ("loaded pair", "folder of pairs")


class TrainingDataBox(QGroupBox):
    """Builds the ``TrainingData`` of the next run; ``choose_folder_requested("raw" | "target")`` asks for a folder
    dialog, ``changed`` says the choice changed (whether a loaded pair is needed may have)."""

    choose_folder_requested = Signal(str)
    changed = Signal()

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__("Training data", parent)
        self.settings = settings
        self.source = QComboBox(objectName="train_source")
        self.source.addItems(SOURCES)
        self.source.setToolTip("Train on the loaded raw/target pair, or on folders of pairs matched by file name")
        self.raw_folder = QLineEdit(objectName="train_raw_folder", placeholderText="folder of raw volumes")
        self.target_folder = QLineEdit(objectName="train_target_folder", placeholderText="same names, targets")
        self.validate_on_loaded = QCheckBox("validate on the loaded pair", objectName="validate_on_loaded")
        self.validate_on_loaded.setChecked(True)
        self.validate_on_loaded.setToolTip(
            "Validate (pick the best model, show the live preview) on the loaded raw/target pair; "
            "otherwise a fraction of the folder pairs is held out for validation"
        )
        form = QFormLayout(self)
        form.addRow("Train on", self.source)
        self._folder_widgets: list[QWidget] = [self.validate_on_loaded]
        for label, edit, role in (
            ("Raw folder", self.raw_folder, "raw"),
            ("Target folder", self.target_folder, "target"),
        ):
            browse = QPushButton("…", objectName=f"browse_{role}_folder")
            browse.setMaximumWidth(36)  # the style's default minimum (80 px) would widen the whole tab
            browse.clicked.connect(lambda _checked=False, r=role: self.choose_folder_requested.emit(r))
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(browse)
            form.addRow(label, row)
            self._folder_widgets += [edit, browse]
        form.addRow("", self.validate_on_loaded)
        self._restore()
        self.source.currentIndexChanged.connect(self._changed)
        self.validate_on_loaded.toggled.connect(self._changed)

    def training_data(self) -> TrainingData:
        """The TrainingData the widgets describe; ValueError when folder training lacks a folder."""
        if self.source.currentIndex() == 0:
            return TrainingData()
        raw, target = self.folder("raw"), self.folder("target")
        if not raw or not target:
            raise ValueError("choose a raw folder and a target folder (pairs are matched by file name)")
        return TrainingData((Path(raw), Path(target)), self.validate_on_loaded.isChecked())

    def folder(self, role: str) -> str:
        """The raw (``role="raw"``) or target folder as typed, stripped."""
        return (self.raw_folder if role == "raw" else self.target_folder).text().strip()

    def set_folder(self, role: str, folder: str) -> None:
        (self.raw_folder if role == "raw" else self.target_folder).setText(folder)

    def needs_loaded_pair(self) -> bool:
        """Whether training needs a loaded raw/target pair: to train on, or to validate on."""
        return self.source.currentIndex() == 0 or self.validate_on_loaded.isChecked()

    def remember(self) -> None:
        """Store the choice as the next session's."""
        values = (SOURCES[self.source.currentIndex()], self.raw_folder.text(), self.target_folder.text(),
                  self.validate_on_loaded.isChecked())  # fmt: skip
        for key, value in zip(DATA_KEYS, values, strict=True):
            self.settings.setValue(key, value)

    def _restore(self) -> None:
        source = str(self.settings.value(DATA_KEYS[0], SOURCES[0]))
        self.source.setCurrentIndex(SOURCES.index(source) if source in SOURCES else 0)
        self.raw_folder.setText(str(self.settings.value(DATA_KEYS[1], "") or ""))
        self.target_folder.setText(str(self.settings.value(DATA_KEYS[2], "") or ""))
        self.validate_on_loaded.setChecked(bool(self.settings.value(DATA_KEYS[3], True, type=bool)))
        self._enable_folders()

    def _enable_folders(self) -> None:
        folders = self.source.currentIndex() == 1
        for widget in self._folder_widgets:
            widget.setEnabled(folders)

    def _changed(self) -> None:
        self._enable_folders()
        self.changed.emit()
