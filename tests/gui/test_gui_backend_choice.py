"""The status bar's backend box: installed backends only, remembered, applied to the next job, device re-probed."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import QSettings

from tests.gui.conftest import build_window, close_window
from voxelstudio.core.backends import LABELS, installed_backends
from voxelstudio.gui.backend_choice import SETTINGS_KEY, BackendBox, initial_backend

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def launched_without_backend(monkeypatch):
    """Each test starts as if KERAS_BACKEND was not set at launch, and leaves the variable as it found it."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)


def test_box_offers_only_installed_backends_with_their_labels(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    box = BackendBox(settings, installed=["tensorflow", "torch"])
    qtbot.addWidget(box)
    assert [box.itemText(i) for i in range(box.count())] == ["TensorFlow", "PyTorch"]
    assert box.backend == "tensorflow" and os.environ["KERAS_BACKEND"] == "tensorflow"
    with pytest.raises(ValueError):
        box.choose("jax")
    real = BackendBox(settings)
    qtbot.addWidget(real)
    assert [real.itemData(i) for i in range(real.count())] == installed_backends()
    assert [real.itemText(i) for i in range(real.count())] == [LABELS[n] for n in installed_backends()]


def test_initial_backend_prefers_launch_environment_then_settings(tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    installed = ["tensorflow", "jax"]
    assert initial_backend(settings, installed, {}) == "tensorflow"
    settings.setValue(SETTINGS_KEY, "jax")
    assert initial_backend(settings, installed, {}) == "jax"
    assert initial_backend(settings, installed, {"KERAS_BACKEND": "TensorFlow"}) == "tensorflow"
    settings.setValue(SETTINGS_KEY, "torch")  # remembered, since uninstalled
    assert initial_backend(settings, installed, {}) == "tensorflow"
    assert initial_backend(settings, ["jax"], {}) == "jax"
    assert initial_backend(settings, [], {}) is None


@pytest.mark.skipif("jax" not in installed_backends(), reason="JAX is not installed")
def test_choosing_a_backend_applies_it_remembers_it_and_reprobes_the_device(qtbot, tmp_path, dialogs):
    built = build_window(tmp_path)
    qtbot.waitExposed(built.window)
    window = built.window
    try:
        window.backend_box.choose("jax")
        assert os.environ["KERAS_BACKEND"] == "jax"
        assert built.settings.value(SETTINGS_KEY) == "jax"
        assert window.device_label.text() == "device: JAX, checking…"
        qtbot.waitUntil(lambda: not window.device_label.text().endswith("checking…"), timeout=120_000)
        assert window.device_label.text().startswith("device: JAX, ")
        assert "CPU" in window.device_label.text() or "GPU" in window.device_label.text()
    finally:
        close_window(window)
    os.environ.pop("KERAS_BACKEND")  # a new launch without the variable: the remembered choice wins
    again = build_window(tmp_path)
    try:
        assert again.window.backend_box.backend == "jax" and os.environ["KERAS_BACKEND"] == "jax"
    finally:
        close_window(again.window)


def test_only_the_newest_device_probe_is_shown(qtbot, session, monkeypatch):
    """A probe started before the backend changed must not overwrite the new backend's label."""
    answers = []

    def probe_of_the_backend_now(_name):  # each probe answers for the backend chosen when it started
        backend = os.environ["KERAS_BACKEND"]
        return lambda report, cancel: (backend, "CPU")

    monkeypatch.setattr("voxelstudio.jobs.work.in_child", probe_of_the_backend_now)
    session.controller.device_described.connect(answers.append)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    session.controller.detect_device()
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    session.controller.detect_device()
    qtbot.waitUntil(lambda: not session.controller.jobs._jobs, timeout=10_000)
    assert answers == ["jax"]


def test_a_failed_device_check_says_so_in_its_label_without_an_error_box(qtbot, session, dialogs, monkeypatch):
    """The device check runs in the background at start-up and on every backend change: when it fails (a broken
    driver, a framework that will not import) the label must not stay at "checking…", and no box interrupts."""
    from voxelstudio.core.errors import VoxelStudioError

    def broken(fn, kwargs, **_):
        raise VoxelStudioError("jax: CUDA driver version is insufficient")

    monkeypatch.setattr("voxelstudio.jobs.work.run_isolated", broken)
    session.window.device_label.setText("device: JAX, checking…")
    session.controller.detect_device()
    qtbot.waitUntil(lambda: not session.window.device_label.text().endswith("checking…"), timeout=10_000)
    assert session.window.device_label.text() == (
        "device: unknown (the check failed: jax: CUDA driver version is insufficient)"
    )
    assert dialogs.errors == []
