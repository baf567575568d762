"""Metrics panel: ``tasks.evaluate.evaluate_volumes`` results as a table with one column per volume.

The evaluation returns ``{"pred": {...}, "raw": {...}, "units": ...}``; each metric becomes a row with the raw
(baseline), predicted and, for bead sizes, target values side by side. Anything else is listed flat.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QBrush, QColor, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from voxelstudio.gui.panels.common import format_number

LABELS = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "nrmse": "NRMSE",
    "precision": "Bead precision",
    "recall": "Bead recall",
    "f1": "Bead F1",
    "n_pred": "Beads found",
    "n_target": "Beads in target",
    "fwhm_lateral": "FWHM lateral ({unit})",
    "fwhm_axial": "FWHM axial ({unit})",
    "fwhm_ratio": "FWHM axial / lateral",
    "fwhm_n": "Beads measured",
}
_TARGET_PREFIX = "target_"


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dictionaries as ("group · name", value) rows, in insertion order."""
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix} · {key}" if prefix else str(key)
        if isinstance(value, Mapping):
            rows.extend(flatten(value, name))
        else:
            rows.append((name, value))
    return rows


HIGHER_IS_BETTER = ("psnr", "ssim", "f1")
"""Metrics where the prediction must not score below the raw input (the z/xy FWHM ratio is checked separately)."""
WORSE_COLOR = "#e06c75"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def worse_than_input(metrics: Mapping[str, Any]) -> list[str]:
    """The metric keys on which the prediction is worse than the raw input: lower PSNR, SSIM or bead F1, or an axial
    / lateral FWHM ratio farther from the target's (higher, when the target's is unknown)."""
    prediction, raw = metrics.get("pred"), metrics.get("raw")
    if not isinstance(prediction, Mapping) or not isinstance(raw, Mapping):
        return []
    worse = []
    for key in HIGHER_IS_BETTER:
        ours, theirs = _number(prediction.get(key)), _number(raw.get(key))
        if ours is not None and theirs is not None and ours < theirs:
            worse.append(key)
    ours, theirs = _number(prediction.get("fwhm_ratio")), _number(raw.get("fwhm_ratio"))
    if ours is not None and theirs is not None:
        goal = _number(prediction.get(_TARGET_PREFIX + "fwhm_ratio"))
        if (abs(ours - goal) > abs(theirs - goal)) if goal is not None else ours > theirs:
            worse.append("fwhm_ratio")
    return worse


def metric_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Column headers and rows (metric label, then one formatted value per column)."""
    prediction = metrics.get("pred")
    if not isinstance(prediction, Mapping):
        return ["Metric", "Value"], [[name, format_number(value)] for name, value in flatten(metrics)]
    raw = metrics.get("raw") if isinstance(metrics.get("raw"), Mapping) else None
    unit = "µm" if metrics.get("units") == "um" else str(metrics.get("units", ""))
    headers = ["Metric", *(["Raw"] if raw is not None else []), "Predicted", "Target"]
    rows = []
    for key, value in prediction.items():
        if key.startswith(_TARGET_PREFIX):
            continue
        label = LABELS.get(key, key).format(unit=unit)
        cells = [label, *([format_number(raw.get(key, ""))] if raw is not None else []), format_number(value)]
        target_key = _TARGET_PREFIX + key  # only the bead widths have a target value ("–" when none was measured)
        cells.append(format_number(prediction[target_key]) if target_key in prediction else "")
        rows.append(cells)
    return headers, rows


class MetricsPanel(QWidget):
    """Shows the document's metrics; ``compute_requested`` asks for a fresh evaluation."""

    compute_requested = Signal()
    save_csv_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint = QLabel(
            "The prediction (and the raw volume, as the baseline) against the target: PSNR, SSIM, bead detection, "
            "and bead sizes (FWHM) with their axial/lateral elongation. Refreshed after every denoise."
        )
        self.hint.setWordWrap(True)
        self.table = QTableWidget(0, 0, self)
        self.table.setObjectName("metrics_table")
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(False)
        self.warning = QLabel(self)
        self.warning.setObjectName("metrics_warning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(f"color: {WORSE_COLOR};")
        self.warning.hide()
        self.compute_button = QPushButton("Compute metrics", objectName="compute_metrics")
        self.compute_button.clicked.connect(self.compute_requested)
        self.copy_button = QPushButton("Copy", objectName="copy_metrics")
        self.copy_button.setToolTip("Copy the table (tab-separated, for a spreadsheet)")
        self.copy_button.clicked.connect(self.copy)
        self.save_button = QPushButton("Save CSV…", objectName="save_metrics")
        self.save_button.setToolTip("Save the table as a CSV file")
        self.save_button.clicked.connect(self.save_csv_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button, 1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.hint)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.warning)
        layout.addLayout(buttons)
        self.set_metrics({})

    def set_metrics(self, metrics: Mapping[str, Any]) -> None:
        headers, rows = metric_table(metrics) if metrics else (["Metric", "Value"], [])
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in range(1, len(headers)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self._flag_worse(metrics, headers)
        self.copy_button.setEnabled(bool(rows))
        self.save_button.setEnabled(bool(rows))

    def _flag_worse(self, metrics: Mapping[str, Any], headers: list[str]) -> None:
        """Predicted values worse than the raw input's in red, and one line saying what that means."""
        worse = worse_than_input(metrics) if metrics else []
        self.warning.setVisible(bool(worse))
        if not worse:
            return
        unit = "µm" if metrics.get("units") == "um" else str(metrics.get("units", ""))
        labels = [LABELS.get(key, key).format(unit=unit) for key in worse]
        column = headers.index("Predicted")
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text() in labels:
                item = self.table.item(row, column)
                item.setForeground(QBrush(QColor(WORSE_COLOR)))
                item.setToolTip("Worse than the raw input")
        self.warning.setText(
            f"Worse than the raw input on {', '.join(labels)}: this prediction lost what the raw scan had "
            "(an undertrained model, or one trained on different data)."
        )

    def table_rows(self) -> list[list[str]]:
        """Headers and rows as shown (for Copy and Save CSV)."""
        headers = [self.table.horizontalHeaderItem(c).text() for c in range(self.table.columnCount())]
        body = [
            [self.table.item(r, c).text() for c in range(self.table.columnCount())]
            for r in range(self.table.rowCount())
        ]
        return [headers, *body]

    def as_text(self, delimiter: str = "\t") -> str:
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(self.table_rows())
        return out.getvalue()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.as_text("\t"))

    def values(self) -> dict[str, list[str]]:
        """The table as shown, metric label -> values (for tests and copy/paste)."""
        return {
            self.table.item(r, 0).text(): [self.table.item(r, c).text() for c in range(1, self.table.columnCount())]
            for r in range(self.table.rowCount())
        }

    def set_enabled_for(self, idle: bool, has_pair: bool) -> None:
        self.compute_button.setEnabled(idle and has_pair)
