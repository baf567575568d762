"""GUI test fixtures: a private QSettings folder, low TensorFlow thread counts, dialogs that record instead of block.

pytest-xvfb starts an Xvfb server for the session (VTK needs a real GL context; Qt's offscreen platform has none).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

# Inherited by the worker processes that run TensorFlow: one thread per pool leaves a core for the GUI.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def private_settings(tmp_path_factory, monkeypatch):
    """Keep QSettings out of the user's home: every test writes INI files under a temporary folder."""
    from PySide6.QtCore import QSettings

    folder = tmp_path_factory.mktemp("settings")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    monkeypatch.setattr("voxelstudio.gui.settings.ORGANIZATION", "VoxelStudioTests")
    return folder


class DialogRecorder:
    """Stands in for voxelstudio.gui.dialogs: records errors and answers questions with ``answer``."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str, str]] = []
        self.questions: list[str] = []
        self.answer = True

    def show_error(self, parent, title, message, details="") -> None:
        self.errors.append((title, message, details))

    def ask_question(self, parent, title, text) -> bool:
        self.questions.append(text)
        return self.answer


@pytest.fixture
def dialogs(monkeypatch) -> DialogRecorder:
    recorder = DialogRecorder()
    monkeypatch.setattr("voxelstudio.gui.dialogs.show_error", recorder.show_error)
    monkeypatch.setattr("voxelstudio.gui.dialogs.ask_question", recorder.ask_question)
    return recorder


BACKGROUND_RGB = (0x10, 0x14, 0x18)


def panel_image(session, panel_role: str) -> np.ndarray:
    """One 3-D panel's RGB image (int), after all pending drawing, rendered by VTK now.

    ``viewports.render()`` asks Qt to repaint, and Qt 6 defers a repaint that comes within a frame (16.7 ms at
    Xvfb's 60 Hz) of the window's last screen update to the next turn of the event loop; pyvista's screenshot reads
    the last finished frame without rendering. Read at once, a panel could show its previous frame (two CI
    failures: a slice view "unchanged" after the cursor moved, a Grad-CAM panel with the axes alone). A
    synchronous VTK render first makes the read the current frame.
    """
    viewports = session.window.viewports
    viewports.render()
    plotter = viewports.panels[panel_role].plotter
    plotter.render_window.Render()
    return np.asarray(plotter.screenshot(return_img=True), dtype=int)


def panel_pixels(session, panel_role: str) -> int:
    """Non-background pixels in one 3-D panel, after all pending drawing (:func:`panel_image`)."""
    return foreground_pixels(panel_image(session, panel_role))


def wait_for_pixels(qtbot, session, panel_role: str, more_than: int, timeout: int = 10_000) -> None:
    """Wait until one 3-D panel shows more than ``more_than`` foreground pixels, the event loop running meanwhile
    (for a panel whose content arrives from a job)."""

    def shown() -> None:
        pixels = panel_pixels(session, panel_role)
        assert pixels > more_than, f"the {panel_role} panel shows {pixels} pixels, expected more than {more_than}"

    qtbot.waitUntil(shown, timeout=timeout)


def foreground_pixels(image) -> int:
    """Pixels of an (H, W, 3) screenshot that differ clearly from the panels' background colour."""
    import numpy as np

    difference = np.abs(np.asarray(image, dtype=int)[..., :3] - np.array(BACKGROUND_RGB)).sum(-1)
    return int((difference > 40).sum())


def build_window(folder):
    """A shown main window with settings and training runs under ``folder``."""
    from PySide6.QtCore import QSettings

    from voxelstudio.app import build_session, create_application

    create_application()
    settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
    built = build_session(settings=settings, runs_dir=folder / "runs")
    built.window.resize(1280, 820)
    built.window.show()
    return built


def close_window(window, timeout_s: float = 120.0) -> None:
    """Close ``window`` and spin the event loop until it has closed for good (its jobs wound down)."""
    window.close()
    process_until(lambda: window.closed, timeout_s)


def process_until(condition, timeout_s: float = 60.0) -> None:
    """Spin the Qt event loop until ``condition()`` holds (for fixtures that cannot use qtbot)."""
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not hold in time")
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.005)


@pytest.fixture
def session(qtbot, tmp_path, dialogs):
    """A fresh shown window; closed (jobs cancelled, interactors closed) afterwards."""
    built = build_window(tmp_path)
    qtbot.waitExposed(built.window)
    yield built
    dialogs.answer = True
    close_window(built.window)


def wait_idle(qtbot, session, timeout: int = 60_000) -> None:
    """Wait until no exclusive job runs."""
    if session.controller.busy:
        qtbot.waitUntil(lambda: not session.controller.busy, timeout=timeout)


@pytest.fixture(scope="module")
def shared_sample_session(qapp, tmp_path_factory):
    """One window per test module with the bundled sample loaded (building and loading take seconds)."""
    recorder = DialogRecorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("voxelstudio.gui.dialogs.show_error", recorder.show_error)
        patch.setattr("voxelstudio.gui.dialogs.ask_question", recorder.ask_question)
        built = build_window(tmp_path_factory.mktemp("window"))
        built.controller.open_sample()
        process_until(lambda: not built.controller.busy and built.document.volume("target") is not None)
        built.dialogs = recorder
        built.originals = built.document.volumes()
        yield built
        close_window(built.window)


@pytest.fixture
def sample_session(shared_sample_session):
    """The shared sample window, put back to its loaded state: sample volumes, no prediction, default view."""
    built = shared_sample_session
    document, view = built.document, built.view
    for role in ("raw", "target"):
        if document.volume(role) is not built.originals[role]:
            document.set_volume(role, built.originals[role])
    document.set_volume("prediction", None)
    document.set_model_path(None)
    view.update(mode="mip", cmap="gray", invert=False, show_scale_bar=True, link_contrast=True, extra_panel="none")
    for role in ("raw", "target", "prediction", "residual"):
        view.set_clim(role, None)
    view.set_cursor((64, 64, 16))
    built.window.action_map["show_residual"].setChecked(False)
    view.history.reset(view.snapshot())  # no test undoes another test's steps
    built.dialogs.errors.clear()
    return built


TINY_CONFIG = {
    "arch": "simple",
    "filters": 2,
    "kernel": (3, 3, 3),
    "epochs": 2,
    "batch_size": 2,
    "patch": (16, 16, 8),
    "steps_per_epoch": 2,
}


def tiny_train_config(**overrides):
    """A seconds-long TrainConfig: simple CNN, 2 filters, kernel 3, 16x16x8 patches."""
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig

    values = {**TINY_CONFIG, **overrides}
    model = DenoiserConfig.for_arch(values["arch"], filters=values["filters"], kernel=values["kernel"])
    return TrainConfig(
        model=model,
        epochs=values["epochs"],
        batch_size=values["batch_size"],
        patch_shape=values["patch"],
        steps_per_epoch=values["steps_per_epoch"],
    ).validate()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny denoiser trained once per test session on the bundled sample (the bundled default may not exist).

    Trained in a child process like the app does: TensorFlow and Mesa's OpenGL cannot share a process.
    """
    from voxelstudio.core.progress import null_report
    from voxelstudio.core.resources import sample_pair_paths
    from voxelstudio.io import load_volume
    from voxelstudio.jobs.runner import run_isolated
    from voxelstudio.tasks.train import train_denoiser

    raw, target = (load_volume(p) for p in sample_pair_paths())
    out = tmp_path_factory.mktemp("tiny_model") / "tiny.keras"
    arguments = {"pairs": [(raw, target)], "config": tiny_train_config(), "out": out, "val_pairs": [(raw, target)]}
    result = run_isolated(train_denoiser, arguments, report=null_report)
    assert result.model_path == out and out.is_file()
    return out
