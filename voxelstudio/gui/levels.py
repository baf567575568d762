"""Multiscale OME-Zarr in the window: what the status bar says about the level shown, and the View panel's level
chooser (loading a finer level goes through the controller like any load, off the GUI thread; which level opens
first is chosen there too, by :func:`voxelstudio.jobs.work.level_to_open`)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from voxelstudio.core.volume import Volume
from voxelstudio.gui.document import Document


def _index(volume: Volume) -> int:
    levels = volume.metadata.get("levels") or ()
    return next((i for i, found in enumerate(levels) if found.path == volume.metadata.get("level")), 0)


def is_coarse_level(volume: Volume | None) -> bool:
    """Whether ``volume`` was read from a level of a multiscale store coarser than its finest."""
    return volume is not None and bool(volume.metadata.get("levels")) and _index(volume) > 0


def level_note(volume: Volume) -> str:
    """Status text for a volume read from a coarser level of a multiscale store ("" otherwise)."""
    levels = volume.metadata.get("levels") or ()
    if not is_coarse_level(volume):
        return ""
    full = "×".join(str(n) for n in levels[0].shape)
    return (
        f" at resolution level {_index(volume)} of {len(levels) - 1} (full resolution {full}); "
        "View ▸ Resolution loads a finer level"
    )


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)


class LevelChooser(QGroupBox):
    """Lists the levels of the multiscale store the raw volume came from; ``level_requested(role, level path)``
    asks to load one. Disabled for volumes that are not from a multiscale store."""

    level_requested = Signal(str, str)
    ROLE = "raw"

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__("Resolution (multiscale OME-Zarr)", parent)
        self.document = document
        self.levels = QComboBox(objectName="resolution_level")
        self.levels.setToolTip("Resolution levels of the raw volume's OME-Zarr store, finest first")
        self.load = QPushButton("Load", objectName="load_level")
        self.load.setToolTip("Load this level (a finer level shows more detail and needs more memory)")
        self.note = QLabel(objectName="level_note", wordWrap=True)
        row = QHBoxLayout()
        row.addWidget(self.levels, 1)
        row.addWidget(self.load)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.note)
        self.load.clicked.connect(self._request)
        self.levels.currentIndexChanged.connect(self._sync_button)
        document.volume_changed.connect(lambda role: self.sync() if role == self.ROLE else None)
        self.sync()

    def sync(self) -> None:
        volume = self.document.volume(self.ROLE)
        levels = () if volume is None else volume.metadata.get("levels") or ()
        self.levels.blockSignals(True)
        self.levels.clear()
        for index, level in enumerate(levels):
            self.levels.addItem(f"{index}: {_shape_text(level.shape)}", level.path)
        if volume is not None and levels:
            self.levels.setCurrentIndex(_index(volume))
        self.levels.blockSignals(False)
        self.setEnabled(bool(levels))
        if volume is None or not levels:
            self.note.setText("The raw volume has one resolution.")
        else:
            full = _shape_text(levels[0].shape)
            self.note.setText(f"Showing level {_index(volume)}; level 0 ({full}) is the full resolution.")
        self._sync_button()

    def _sync_button(self) -> None:
        volume = self.document.volume(self.ROLE)
        current = None if volume is None else volume.metadata.get("level")
        self.load.setEnabled(self.levels.count() > 0 and self.levels.currentData() != current)

    def _request(self) -> None:
        if self.levels.currentData() is not None:
            self.level_requested.emit(self.ROLE, self.levels.currentData())
