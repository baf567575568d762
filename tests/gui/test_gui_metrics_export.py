"""Metrics tab: a prediction worse than its input is flagged in red; Copy and Save CSV export the table."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtGui import QGuiApplication

from tests.gui.conftest import wait_idle
from voxelstudio.gui.panels.metrics import WORSE_COLOR, metric_table, worse_than_input
from voxelstudio.gui.settings import last_folder, recent_files

pytestmark = pytest.mark.gui


def test_worse_than_input_rules():
    raw = {"psnr": 20.0, "ssim": 0.5, "f1": 0.99, "fwhm_ratio": 3.0}
    good = {"psnr": 25.0, "ssim": 0.7, "f1": 0.99, "fwhm_ratio": 1.5, "target_fwhm_ratio": 1.2}
    assert worse_than_input({"pred": good, "raw": raw}) == []
    bad = {"psnr": 19.0, "ssim": 0.7, "f1": 0.81, "fwhm_ratio": 0.5, "target_fwhm_ratio": 2.9}
    assert worse_than_input({"pred": bad, "raw": raw}) == ["psnr", "f1", "fwhm_ratio"]  # 0.5 is farther from 2.9
    assert worse_than_input({"pred": {"psnr": float("nan")}, "raw": raw}) == []
    assert worse_than_input({"pred": bad}) == []  # no raw baseline, nothing to compare with


def test_undefined_scores_and_unmeasured_widths_show_a_dash():
    prediction = {"f1": None, "n_pred": 0, "fwhm_lateral": None, "target_fwhm_lateral": None, "psnr": 31.25}
    headers, rows = metric_table({"pred": prediction, "units": "um"})
    assert headers == ["Metric", "Predicted", "Target"]
    assert rows == [
        ["Bead F1", "–", ""],
        ["Beads found", "0", ""],
        ["FWHM lateral (µm)", "–", "–"],
        ["PSNR (dB)", "31.25", ""],
    ]


def test_a_deliberately_bad_prediction_is_flagged_and_the_table_exports(qtbot, sample_session, tmp_path, monkeypatch):
    window, document, controller = sample_session.window, sample_session.document, sample_session.controller
    raw, target = document.volume("raw"), document.volume("target")
    noise = np.random.default_rng(0).random(target.shape, dtype=np.float32) * float(target.data.max())
    document.set_volume("prediction", target.replace(data=noise, name="noise", source=None))
    panel = window.metrics_panel
    with qtbot.waitSignal(document.metrics_changed, timeout=120_000):
        controller.evaluate()
    wait_idle(qtbot, sample_session)
    assert not panel.warning.isHidden() and "Worse than the raw input" in panel.warning.text()
    assert "PSNR" in panel.warning.text()
    predicted = panel.table_rows()[0].index("Predicted")
    psnr_row = next(r for r in range(panel.table.rowCount()) if panel.table.item(r, 0).text() == "PSNR (dB)")
    assert panel.table.item(psnr_row, predicted).foreground().color().name() == WORSE_COLOR

    panel.copy_button.click()
    copied = QGuiApplication.clipboard().text().splitlines()
    assert [line.split("\t") for line in copied] == panel.table_rows()

    out = tmp_path / "numbers.csv"
    suggestions = []
    monkeypatch.setattr(
        "voxelstudio.gui.dialogs.get_save_path",
        lambda parent, title, suggested, filt: suggestions.append(suggested) or str(out),
    )
    panel.save_button.click()
    assert suggestions[0].endswith("_metrics.csv")
    with out.open(newline="") as handle:
        assert list(csv.reader(handle)) == panel.table_rows()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    assert str(out.resolve()) not in recent_files(sample_session.settings)  # Open Recent lists volumes only
    assert last_folder(sample_session.settings) == str(tmp_path.resolve())
    assert raw is document.volume("raw")


def test_a_good_prediction_is_not_flagged(qtbot, sample_session):
    panel = sample_session.window.metrics_panel
    panel.set_metrics({"pred": {"psnr": 30.0, "f1": 1.0}, "raw": {"psnr": 20.0, "f1": 0.9}, "units": "um"})
    assert panel.warning.isHidden() and panel.copy_button.isEnabled()
    panel.set_metrics({})
    assert not panel.copy_button.isEnabled() and not panel.save_button.isEnabled()
