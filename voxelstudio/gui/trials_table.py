"""The hyper-parameter search's trials as a table, one row per trial as it ends; the best trial in bold."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from voxelstudio.jobs.events import TrialResult

PARAMS = (("learning_rate", "lr"), ("batch_size", "batch"), ("dropout", "dropout"), ("width", "width"))
COLUMNS = ("#", "val. acc.", "epochs", *(title for _, title in PARAMS), "state")
"""What a row shows, the score first: the side panel is narrow and the rest scrolls."""


def _number(value: object) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3g}"
    return "–" if value is None else str(value)


class TrialsTable(QTableWidget):
    """Read-only table of :class:`TrialResult` events; ``trials`` keeps them in arrival order."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("trials_table")
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.setHorizontalHeaderItem(1, QTableWidgetItem(COLUMNS[1]))
        self.horizontalHeaderItem(1).setToolTip("validation accuracy of the trial's best epoch")
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.trials: list[TrialResult] = []

    def clear_trials(self) -> None:
        self.trials = []
        self.setRowCount(0)

    def add_trial(self, trial: TrialResult) -> None:
        """Append ``trial``'s row and embolden the best trial so far (highest validation accuracy)."""
        self.trials.append(trial)
        accuracy = "–" if math.isnan(trial.val_accuracy) else f"{trial.val_accuracy:.1%}"
        params = [_number(trial.params.get(key)) for key, _ in PARAMS]
        cells = [str(trial.trial), accuracy, str(trial.epochs_run), *params, trial.state]
        row = self.rowCount()
        self.insertRow(row)
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.setItem(row, column, item)
        self._mark_best()
        self.scrollToBottom()

    def best_row(self) -> int | None:
        """Row of the trial with the highest validation accuracy (the first of equals), None when none scored."""
        scored = [(t.val_accuracy, -i) for i, t in enumerate(self.trials) if math.isfinite(t.val_accuracy)]
        return -max(scored)[1] if scored else None

    def _mark_best(self) -> None:
        best = self.best_row()
        for row in range(self.rowCount()):
            for column in range(self.columnCount()):
                item = self.item(row, column)
                font = item.font()
                font.setBold(row == best)
                item.setFont(font)
