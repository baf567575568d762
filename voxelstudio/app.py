"""The composition root: builds the QApplication, document, view state, controller, window and command wiring.

``voxelstudio`` / ``voxelstudio gui [FILES] [--sample]`` end up in :func:`run_app`. TensorFlow is not imported here:
the window appears first, and the compute device is described by a background job once the window is up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths, QTimer
from PySide6.QtWidgets import QApplication

from voxelstudio import __version__
from voxelstudio.gui.commands import Commands
from voxelstudio.gui.controller import Controller
from voxelstudio.gui.document import Document
from voxelstudio.gui.main_window import MainWindow
from voxelstudio.gui.pyside_fix import protect_none_refcount
from voxelstudio.gui.settings import APPLICATION, ORGANIZATION, app_settings
from voxelstudio.gui.view_preferences import keep_view_preferences
from voxelstudio.gui.view_state import ViewState

DEVICE_PROBE_DELAY_MS = 2000
"""The device probe starts TensorFlow in a child process; let the first frames have the CPU first."""
TRACE_STARTUP_ENV = "VOXELSTUDIO_TRACE_STARTUP"
"""When set, a line on stderr marks the first frame drawn with data (``benchmarks/gui_latency.py`` times it)."""
FIRST_FRAME_LINE = "voxelstudio: first frame with data rendered"
PREBUILD_FALLBACK_MS = 4000
"""Without data to draw, the plots are built this long after the window is shown."""


@dataclass
class Session:
    """Everything one open window is made of (tests drive these directly)."""

    window: MainWindow
    document: Document
    view: ViewState
    controller: Controller
    commands: Commands
    settings: QSettings


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    """The process's QApplication (created once)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv if argv is not None else sys.argv[:1]))
    protect_none_refcount()
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    return app  # type: ignore[return-value]


def default_runs_dir() -> Path:
    """Where training runs write checkpoints: the per-user application data folder."""
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location or Path.home() / ".voxelstudio") / "runs"


def build_session(*, settings: QSettings | None = None, runs_dir: Path | None = None) -> Session:
    """Create the window and its collaborators (the QApplication must exist)."""
    settings = settings if settings is not None else app_settings()
    document = Document()
    view = ViewState()
    keep_view_preferences(settings, view)  # before the window: its panels start with the saved colormaps
    controller = Controller(document, settings, runs_dir=runs_dir or default_runs_dir())
    window = MainWindow(document, view, controller, settings)
    commands = Commands(window, controller, document, view, settings)
    document.setParent(window)
    view.setParent(window)
    controller.setParent(window)
    return Session(window, document, view, controller, commands, settings)


def open_initial(session: Session, files: Sequence[str | Path] = (), *, sample: bool = False) -> None:
    """Load the start-up data: the bundled sample, or FILES (the first as raw, the second as target)."""
    if sample:
        session.controller.open_sample()
    elif files:
        session.controller.open_pair(files[0], files[1] if len(files) > 1 else None)


def run_app(files: Sequence[str | Path] = (), *, sample: bool = False) -> int:
    """Show the window, load the start-up data, describe the compute device in the background, run the loop."""
    app = create_application()
    session = build_session()
    open_initial(session, files, sample=sample)  # reads in a worker thread while the window is shown
    session.window.show()
    QTimer.singleShot(DEVICE_PROBE_DELAY_MS, session.controller.detect_device)
    prebuild_when_idle(session)
    if os.environ.get(TRACE_STARTUP_ENV):
        trace_first_frame(session)
    return int(app.exec())


def prebuild_when_idle(session: Session) -> None:
    """Build the hidden tabs' plots (``MainWindow.prebuild_plots``) in the event-loop turn after the first frame
    with data, or :data:`PREBUILD_FALLBACK_MS` after start without data: not before the first frame, which they
    would delay, and not on the first click on a tab, which they would stall."""
    built: list[bool] = []

    def build() -> None:
        if not built:
            built.append(True)
            session.window.prebuild_plots()

    def rendered(panel_role: str) -> None:
        if panel_role == "raw":
            session.window.viewports.frame_rendered.disconnect(rendered)
            QTimer.singleShot(0, build)

    session.window.viewports.frame_rendered.connect(rendered)
    QTimer.singleShot(PREBUILD_FALLBACK_MS, build)


def trace_first_frame(session: Session) -> None:
    """Print :data:`FIRST_FRAME_LINE` to stderr when the raw panel is first rendered with a volume."""

    def rendered(panel_role: str) -> None:
        if panel_role == "raw":
            session.window.viewports.frame_rendered.disconnect(rendered)
            print(FIRST_FRAME_LINE, file=sys.stderr, flush=True)

    session.window.viewports.frame_rendered.connect(rendered)
