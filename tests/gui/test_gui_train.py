"""Training from the Train panel: progress, live preview and loss plot, a saved model, and Stop."""

from __future__ import annotations

import math
import re

import pytest

from tests.gui.conftest import TINY_CONFIG, wait_idle
from voxelstudio.jobs.events import EpochResult, TrainingStep

pytestmark = pytest.mark.gui


def _configure(panel, **overrides) -> None:
    values = {**TINY_CONFIG, **overrides}
    panel.arch.setCurrentText(values["arch"])
    panel.filters.setValue(values["filters"])
    for box, value in zip(panel.kernel, values["kernel"], strict=True):
        box.setValue(value)
    panel.epochs.setValue(values["epochs"])
    panel.batch.setValue(values["batch_size"])
    for box, value in zip(panel.patch, values["patch"], strict=True):
        box.setValue(value)
    panel.steps.setValue(values["steps_per_epoch"])


def test_train_reports_progress_previews_and_saves_a_model(qtbot, sample_session):
    window, controller, document = sample_session.window, sample_session.controller, sample_session.document
    panel = window.train_panel
    _configure(panel)
    progress = []
    controller.jobs.job_event.connect(lambda event: progress.append(event) if isinstance(event, TrainingStep) else None)
    with qtbot.waitSignal(controller.model_trained, timeout=60_000) as trained:
        panel.train_button.click()
        assert controller.busy and not window.action_map["denoise"].isEnabled()
    wait_idle(qtbot, sample_session)
    result = trained.args[0]
    assert result.epochs_run == 2 and result.stopped_reason == "epochs"
    assert document.model_path == result.model_path and result.model_path.is_file()
    assert [p.epoch for p in progress if p.step == 2][-1] == 2
    assert [p.epoch for p in progress if isinstance(p, EpochResult)] == [1, 2]  # each epoch's result, as an event
    assert progress[-1].epochs == 2 and math.isfinite(progress[-1].loss) and math.isfinite(progress[-1].val_loss)
    assert len(panel.plot.train[0]) >= 3 and panel.plot.val[0] == [1, 2]  # losses per step, one point per epoch
    assert document.volume("prediction").name == "preview, epoch 2"  # the live preview reached the panel
    window.viewports.flush()
    assert "preview, epoch 2" in window.viewports.panels["prediction"].title.text()  # not the raw file's name
    assert panel.quality.psnr[0] == [1, 2]  # validation PSNR per epoch; the preview's z/xy ratio beside the target's
    assert panel.quality.target_ratio == pytest.approx(1.0, abs=0.2)
    assert document.volume("prediction").shape == document.volume("raw").shape
    assert "2 epoch(s)" in panel.progress.label.text()
    assert window.action_map["denoise"].isEnabled() and window.action_map["save_model"].isEnabled()
    saved = sample_session.settings.value("training/config")
    assert '"filters": 2' in saved  # this run's settings are next session's defaults


def test_stop_ends_training_within_an_epoch_and_keeps_the_best_model(qtbot, sample_session):
    window, controller = sample_session.window, sample_session.controller
    _configure(window.train_panel, epochs=500)
    epochs_seen = []
    controller.training.step.connect(lambda step: epochs_seen.append(step.epoch))
    with qtbot.waitSignal(controller.model_trained, timeout=60_000) as trained:
        window.train_panel.train_button.click()
        qtbot.waitUntil(lambda: len(epochs_seen) > 0 and epochs_seen[-1] >= 3, timeout=120_000)
        window.train_panel.progress.stop_button.click()
    wait_idle(qtbot, sample_session)
    result = trained.args[0]
    assert result.stopped_reason == "cancelled"
    assert 2 <= result.epochs_run < 500
    assert result.model_path is not None and result.model_path.is_file()
    assert sample_session.document.model_path == result.model_path
    stopped = r"stopped at epoch \d+/500, best model kept \(bead positions not measured\)\."
    assert re.fullmatch(stopped, window.train_panel.progress.label.text())
    bar = window.train_panel.progress.bar
    assert bar.value() < bar.maximum()  # where it stopped, not 100 %
    assert window.train_panel.train_button.isEnabled() and not controller.busy
    assert sample_session.dialogs.errors == []


def test_invalid_training_setup_is_reported_not_started(qtbot, sample_session, monkeypatch):
    window = sample_session.window
    monkeypatch.setattr(type(window.train_panel), "config", lambda self: (_ for _ in ()).throw(ValueError("bad")))
    window.action_map["train"].trigger()
    assert not sample_session.controller.busy
    assert sample_session.dialogs.errors[0][1] == "bad"
