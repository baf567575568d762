"""Metrics panel: ``tasks.evaluate.evaluate_volumes`` results as a table with one column per volume.

The evaluation returns ``{"pred": {...}, "raw": {...}, "units": ...}``; each metric becomes a row with the raw
(baseline), predicted and, for bead sizes, target values side by side. Anything else is listed flat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
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
        target = prediction.get(_TARGET_PREFIX + key)
        cells.append("" if target is None else format_number(target))
        rows.append(cells)
    return headers, rows


class MetricsPanel(QWidget):
    """Shows the document's metrics; ``compute_requested`` asks for a fresh evaluation."""

    compute_requested = Signal()

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
        self.compute_button = QPushButton("Compute metrics", objectName="compute_metrics")
        self.compute_button.clicked.connect(self.compute_requested)
        layout = QVBoxLayout(self)
        layout.addWidget(self.hint)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.compute_button)
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

    def values(self) -> dict[str, list[str]]:
        """The table as shown, metric label -> values (for tests and copy/paste)."""
        return {
            self.table.item(r, 0).text(): [self.table.item(r, c).text() for c in range(1, self.table.columnCount())]
            for r in range(self.table.rowCount())
        }

    def set_enabled_for(self, idle: bool, has_pair: bool) -> None:
        self.compute_button.setEnabled(idle and has_pair)
