"""Denoising from the window with a tiny trained model: loading it, the predicted panel, uncertainty, metrics."""

from __future__ import annotations

import pytest

from tests.gui.conftest import panel_pixels, wait_for_pixels, wait_idle

pytestmark = pytest.mark.gui


def test_load_model_then_denoise_with_uncertainty(qtbot, sample_session, tiny_model, monkeypatch):
    window, document = sample_session.window, sample_session.document
    sample_session.controller.detect_device()  # beside the exclusive jobs below; it imports TensorFlow too
    monkeypatch.setattr("voxelstudio.gui.dialogs.get_open_path", lambda *args: str(tiny_model))
    window.action_map["load_model"].trigger()
    wait_idle(qtbot, sample_session, timeout=120_000)
    assert document.model_path == tiny_model
    assert window.denoise_panel.model_label.text() == "Model: tiny.keras"
    assert window.denoise_panel.model_label.toolTip() == str(tiny_model)

    empty = panel_pixels(sample_session, "prediction")
    window.denoise_panel.tta.setChecked(True)
    texts = []
    sample_session.controller.denoising.progressed.connect(
        lambda _event: texts.append(window.denoise_panel.progress.label.text())
    )
    with qtbot.waitSignal(document.metrics_changed, timeout=120_000):
        window.denoise_panel.denoise_button.click()
    wait_idle(qtbot, sample_session)
    prediction, uncertainty = document.volume("prediction"), document.volume("uncertainty")
    assert prediction.shape == uncertainty.shape == document.volume("raw").shape
    assert float(uncertainty.data.min()) >= 0.0 and float(uncertainty.data.max()) > 0.0
    tiles = [t for t in texts if t.startswith("transform ")]  # test-time augmentation: eight transforms, tiled
    assert tiles and tiles[-1].startswith("transform 8/8 · tile ")
    sample_session.view.update(link_contrast=False)  # a 2-epoch model is faint on the target's scale
    wait_for_pixels(qtbot, sample_session, "prediction", more_than=empty + 1000)  # drawn in its own contrast
    title = window.viewports.panels["prediction"].title.text()
    assert "Predicted" in title and "128×128×32" in title
    made_by = sample_session.document.made_by("prediction")
    assert made_by["model"]["sha256"]  # what the denoiser recorded, for export
    assert sample_session.document.made_by("uncertainty")["model"] == made_by["model"]  # exported with its record
    assert "PSNR (dB)" in window.metrics_panel.values()

    qtbot.waitUntil(lambda: not window.device_label.text().endswith("checking…"), timeout=120_000)
    assert window.device_label.text().startswith("device: ") and (
        "CPU" in window.device_label.text() or "GPU" in window.device_label.text()
    )

    assert window.denoise_panel.uncertainty_button.isEnabled()
    window.denoise_panel.uncertainty_button.click()
    window.viewports.flush()
    extra = window.viewports.panels["extra"]
    assert extra.isVisible() and "Uncertainty" in extra.title.text()


def test_a_broken_model_file_is_reported_and_not_used(qtbot, sample_session, tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    sample_session.controller.load_model(broken)
    wait_idle(qtbot, sample_session, timeout=120_000)
    assert sample_session.document.model_path is None
    _title, message, details = sample_session.dialogs.errors[-1]
    assert "broken.keras" in message and "\n" not in message
    assert "Traceback" in details
    assert sample_session.window.action_map["denoise"].isEnabled()


def test_save_model_copies_the_current_model(qtbot, sample_session, tiny_model, tmp_path, monkeypatch):
    sample_session.document.set_model_path(tiny_model)
    destination = tmp_path / "kept.keras"
    monkeypatch.setattr("voxelstudio.gui.dialogs.get_save_path", lambda *args: str(destination))
    sample_session.window.action_map["save_model"].trigger()
    wait_idle(qtbot, sample_session)
    assert destination.read_bytes() == tiny_model.read_bytes()


def test_the_bundled_model_says_how_to_fit_it_to_a_microscope(session):
    panel = session.window.denoise_panel
    assert panel.model_label.text() == "Model: bundled default"
    tip = panel.model_label.toolTip()
    assert "Adapt to the raw volume" in tip and "Fine-tune unchecked" in tip
