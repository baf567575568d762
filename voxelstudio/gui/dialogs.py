"""Small modal dialogs. Tests replace the module-level functions (monkeypatch) so nothing blocks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> QMessageBox:
    """A warning box with a one-line message; the traceback hides under "Show Details...".

    Opened window-modal without blocking (``open``, not ``exec``): a nested event loop would let the job that
    failed end, and its objects be deleted, while the code that reported the failure is still on the stack.
    """
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if details:
        box.setDetailedText(details)
    if parent is None:  # nothing else keeps a parentless box's Python wrapper, and so the box, alive while open
        _open_boxes.add(box)
        box.finished.connect(lambda _result: _open_boxes.discard(box))
    box.open()
    return box


_open_boxes: set[QMessageBox] = set()


def show_info(parent: QWidget | None, title: str, message: str) -> None:
    QMessageBox.information(parent, title, message)


def ask_question(parent: QWidget | None, title: str, text: str) -> bool:
    """Yes/No question, No by default."""
    answer = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def ask_role(parent: QWidget | None, path: str | Path) -> str | None:
    """Ask whether ``path`` is the raw or the target volume; None if cancelled."""
    box = QMessageBox(QMessageBox.Icon.Question, "Open volume", f"Open {Path(path).name} as…", parent=parent)
    raw = box.addButton("Raw", QMessageBox.ButtonRole.AcceptRole)
    target = box.addButton("Target", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return {raw: "raw", target: "target"}.get(box.clickedButton())


class VariablePicker(QDialog):
    """Lists a file's arrays (io.VariableInfo: name, shape, dtype); only volumes can be chosen."""

    def __init__(self, path: str | Path, variables: Sequence[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a variable")
        self._names = [v.name for v in variables]
        self.table = QTableWidget(len(variables), 3, self)
        self.table.setHorizontalHeaderLabels(["Name", "Shape", "Type"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        for row, info in enumerate(variables):
            for column, text in enumerate([info.name, info.shape_text, info.dtype]):
                item = QTableWidgetItem(text)
                if not info.is_volume:
                    item.setFlags(Qt.ItemFlag.NoItemFlags)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(self.accept)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{Path(path).name} holds several arrays. Which one is the volume?"))
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        usable = [row for row, v in enumerate(variables) if v.is_volume]
        if usable:
            self.table.selectRow(usable[0])
        self.resize(420, 260)

    def chosen(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self._names[rows[0].row()] if rows else None


def pick_variable(parent: QWidget | None, path: str | Path, variables: Sequence[Any]) -> str | None:
    """Ask which of ``variables`` (io.VariableInfo) to load from ``path``; None when cancelled."""
    picker = VariablePicker(path, variables, parent)
    return picker.chosen() if picker.exec() == QDialog.DialogCode.Accepted else None


VOLUME_FILTER = "Volumes (*.mat *.tif *.tiff *.npy *.npz);;MATLAB (*.mat);;TIFF (*.tif *.tiff);;NumPy (*.npy *.npz)"
EXPORT_FILTER = "MATLAB (*.mat);;TIFF (*.tif);;NumPy (*.npy)"
MODEL_FILTER = "Keras model (*.keras)"
IMAGE_FILTER = "PNG image (*.png)"
CSV_FILTER = "CSV table (*.csv)"


def get_open_path(parent: QWidget | None, title: str, folder: str, file_filter: str) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, title, folder, file_filter)
    return path or None


def get_folder(parent: QWidget | None, title: str, folder: str) -> str | None:
    return QFileDialog.getExistingDirectory(parent, title, folder) or None


def get_save_path(parent: QWidget | None, title: str, suggested: str, file_filter: str) -> str | None:
    """A path to write; the suffix of the chosen filter is added when the user typed none."""
    path, chosen_filter = QFileDialog.getSaveFileName(parent, title, suggested, file_filter)
    if not path:
        return None
    if not Path(path).suffix and "*." in chosen_filter:
        path += "." + chosen_filter.split("*.", 1)[1].split()[0].rstrip(")")
    return path


class EnvironmentDialog(QDialog):
    """Help > Environment: ``voxelstudio doctor``'s text, "Gathering…" until it arrives, and a Copy button."""

    GATHERING = "Gathering the environment report (each Keras backend starts in a process of its own)…"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Environment")
        self.setObjectName("environment_dialog")
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy the report to the clipboard (for a bug report)")
        self.copy_button.clicked.connect(self.copy)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(900, 300)
        self.gathering()

    def gathering(self) -> None:
        self.text.setPlainText(self.GATHERING)
        self.copy_button.setEnabled(False)

    def show_report(self, text: str) -> None:
        self.text.setPlainText(text)
        self.copy_button.setEnabled(True)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text.toPlainText())
