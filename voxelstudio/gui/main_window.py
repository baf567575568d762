"""The main window's layout: 3-D panels over synced 2-D slice views, side panels in tabs, menus, status bar.

Behaviour lives elsewhere: the controller runs jobs, :mod:`voxelstudio.gui.commands` wires actions to it, the views
follow the document. The window only arranges widgets, asks before closing during a job, and closes the VTK
interactors on exit.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QToolBar,
    QWidget,
)

from voxelstudio.gui import dialogs
from voxelstudio.gui.actions import build_actions, populate_menus, populate_toolbar
from voxelstudio.gui.backend_choice import BackendBox
from voxelstudio.gui.canvas import QuietCanvas
from voxelstudio.gui.controller import Controller
from voxelstudio.gui.document import Document
from voxelstudio.gui.panels.classify import ClassifyPanel
from voxelstudio.gui.panels.denoise import DenoisePanel
from voxelstudio.gui.panels.metrics import MetricsPanel
from voxelstudio.gui.panels.profile import ProfilePanel
from voxelstudio.gui.panels.train import TrainPanel
from voxelstudio.gui.panels.view_settings import ViewSettingsPanel
from voxelstudio.gui.slices import SliceViews
from voxelstudio.gui.view_state import ViewState
from voxelstudio.gui.viewports import ViewportGrid

STYLE_SHEET = """
QMainWindow, QWidget { background: #1b2026; color: #d8dee9; }
QLabel#panelTitle { padding: 3px 6px; background: #232a31; border-radius: 3px; }
QGroupBox { border: 1px solid #343c45; border-radius: 4px; margin-top: 10px; padding-top: 6px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; color: #9fb3c8; }
QPushButton { background: #2c3640; border: 1px solid #3f4a55; border-radius: 3px; padding: 4px 10px; }
QPushButton:hover { background: #35424e; }
QPushButton:disabled, QComboBox:disabled, QSpinBox:disabled, QDoubleSpinBox:disabled { color: #66707a; }
QComboBox, QSpinBox, QDoubleSpinBox { background: #232a31; border: 1px solid #3f4a55; padding: 2px 4px; }
QTabWidget::pane { border: 1px solid #343c45; }
QTabBar::tab { background: #232a31; padding: 5px 7px; }
QTabBar::tab:selected { background: #2f3a45; }
QProgressBar { border: 1px solid #3f4a55; border-radius: 3px; text-align: center; height: 14px; }
QProgressBar::chunk { background: #3b82a0; }
QTableWidget { background: #161b20; gridline-color: #343c45; }
QHeaderView::section { background: #232a31; color: #9fb3c8; border: none; padding: 3px; }
QToolBar { border: none; spacing: 4px; }
QStatusBar QLabel { padding: 0 6px; }
"""


class _PanelScroll(QScrollArea):
    """Scrolls its panel when the window is smaller than the panel (vertically, mostly): it never sets the
    window's minimum size."""

    def minimumSizeHint(self) -> QSize:
        return QSize(60, 60)


class SideTabs(QTabWidget):
    """The side tabs. Each panel scrolls inside its tab, so a tall panel (Train, Classify) never makes the window
    taller than a small screen; ``indexOf``/``setCurrentWidget`` accept the panel itself."""

    def add_panel(self, panel: QWidget, title: str) -> int:
        scroll = _PanelScroll(self)
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        return self.addTab(scroll, title)

    def indexOf(self, widget: QWidget) -> int:  # type: ignore[override]
        for index in range(self.count()):
            page = self.widget(index)
            if page is widget or (isinstance(page, QScrollArea) and page.widget() is widget):
                return index
        return -1

    def setCurrentWidget(self, widget: QWidget) -> None:  # type: ignore[override]
        index = self.indexOf(widget)
        if index >= 0:
            self.setCurrentIndex(index)


class MainWindow(QMainWindow):
    """VoxelStudio's window. ``files_dropped(paths)`` fires when volume files are dropped on it."""

    files_dropped = Signal(list)

    def __init__(self, document: Document, view: ViewState, controller: Controller, settings: QSettings) -> None:
        super().__init__()
        self.document, self.view, self.controller, self.settings = document, view, controller, settings
        self.setWindowTitle("VoxelStudio")
        self.setObjectName("VoxelStudio")
        self.setStyleSheet(STYLE_SHEET)
        self.setAcceptDrops(True)
        self.closing = False  # the user closed the window; it may wait, hidden, for jobs to end
        self.closed = False  # closed for good (interactors closed)
        self.resize(self.default_size())

        self.action_map = build_actions(self)  # by ActionSpec key (QWidget.actions() keeps its meaning)
        self.menus = populate_menus(self.menuBar(), self.action_map)
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.setObjectName("recent_menu")
        self.menus["File"].insertMenu(self.menus["File/Export"].menuAction(), self.recent_menu)
        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("main_toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        populate_toolbar(toolbar, self.action_map)
        self.addToolBar(toolbar)

        self.viewports = ViewportGrid(document, view, self)
        self.slices = SliceViews(document, view, self.viewports, self)
        self.view_panel = ViewSettingsPanel(document, view, self)
        self.train_panel = TrainPanel(settings, self)
        self.denoise_panel = DenoisePanel(self)
        self.metrics_panel = MetricsPanel(self)
        self.classify_panel = ClassifyPanel(self)
        self.profile_panel = ProfilePanel(self)
        self.tabs = SideTabs(self)
        self.tabs.setObjectName("side_tabs")
        for panel, title in (
            (self.view_panel, "View"),
            (self.train_panel, "Train"),
            (self.denoise_panel, "Denoise"),
            (self.metrics_panel, "Metrics"),
            (self.classify_panel, "Classify"),
            (self.profile_panel, "Profile"),
        ):
            self.tabs.add_panel(panel, title)
        self.tabs.setMinimumWidth(330)

        self.views_splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.views_splitter.setObjectName("views_splitter")
        self.views_splitter.addWidget(self.viewports)
        self.views_splitter.addWidget(self.slices)
        self.views_splitter.setStretchFactor(0, 3)
        self.views_splitter.setStretchFactor(1, 2)
        self.main_splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.main_splitter.setObjectName("main_splitter")
        self.main_splitter.addWidget(self.views_splitter)
        self.main_splitter.addWidget(self.tabs)
        self.main_splitter.setStretchFactor(0, 1)
        self.main_splitter.setStretchFactor(1, 0)
        self.main_splitter.setSizes([1150, 350])
        self.setCentralWidget(self.main_splitter)

        self.job_bar = QProgressBar(self)
        self.job_bar.setMaximumWidth(180)
        self.job_bar.setVisible(False)
        self.device_label = QLabel("device: checking…", self)
        self.device_label.setObjectName("device_label")
        self.backend_box = BackendBox(settings, self)
        self.statusBar().addPermanentWidget(self.job_bar)
        self.statusBar().addPermanentWidget(self.backend_box)
        self.statusBar().addPermanentWidget(self.device_label)
        self.restore_layout()
        document.volume_changed.connect(lambda role: self.update_title() if role == "raw" else None)

    def prebuild_plots(self) -> None:
        """Build every plot's axes now (they are otherwise built when first shown): called once the window is idle
        after its first frame, so that first showing a tab (Train: about 45 ms of axes) does not stall the click."""
        for canvas in self.findChildren(QuietCanvas):
            canvas.ensure_built()

    def update_title(self) -> None:
        """The window title names the raw volume's file (or its name), as editors name their document."""
        raw = self.document.volume("raw")
        if raw is None:
            self.setWindowTitle("VoxelStudio")
            return
        name = raw.source.name if raw.source is not None else raw.name
        self.setWindowTitle(f"{name} — VoxelStudio")

    # ------------------------------------------------------------------------------------------- persistence
    def restore_layout(self) -> None:
        for key, restore in (
            ("window/geometry", self.restoreGeometry),
            ("window/state", self.restoreState),
            ("window/main_splitter", self.main_splitter.restoreState),
            ("window/views_splitter", self.views_splitter.restoreState),
        ):
            value = self.settings.value(key)
            if isinstance(value, QByteArray):
                restore(value)
        self.fit_to_screen()

    def default_size(self) -> QSize:
        """1500x950, or 90 % of the screen's available area on a smaller screen (room for the window's frame)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return QSize(1500, 950)
        area = screen.availableGeometry()
        return QSize(min(1500, int(area.width() * 0.9)), min(950, int(area.height() * 0.9)))

    def fit_to_screen(self) -> None:
        """Keep the window on the screen it is on: no larger than its available area and not off its edges (a
        geometry saved on a bigger screen, or grown by a long title, is clamped here)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None or self.isMaximized() or self.isFullScreen():
            return
        area = screen.availableGeometry()
        frame = self.frameGeometry().size() - self.geometry().size()  # title bar and borders, where known
        width = min(self.width(), area.width() - frame.width())
        height = min(self.height(), area.height() - frame.height())
        if (width, height) != (self.width(), self.height()):
            self.resize(width, height)
        x = min(max(self.x(), area.left()), area.right() + 1 - width - frame.width())
        y = min(max(self.y(), area.top()), area.bottom() + 1 - height - frame.height())
        if (x, y) != (self.x(), self.y()):
            self.move(x, y)

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/main_splitter", self.main_splitter.saveState())
        self.settings.setValue("window/views_splitter", self.views_splitter.saveState())
        self.settings.sync()

    # ------------------------------------------------------------------------------------------------ events
    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask before abandoning a running job; then cancel every job and close. The window goes away at once:
        while jobs wind down (training saves its best model), it is hidden, and it closes for good (interactors
        closed, the application free to quit) when the last job has ended; nothing blocks the event loop."""
        jobs = self.controller.jobs
        if self.closing:
            if jobs.has_jobs:
                event.ignore()  # still winding down: closes itself when the jobs have ended
                return
        elif self.document.running_job is not None:
            job = self.document.running_job
            if not dialogs.ask_question(
                self, "Quit VoxelStudio", f"{job.capitalize()} is still running. Stop it and quit?"
            ):
                event.ignore()
                return
        if not self.closing:
            self.closing = True
            self.save_layout()
        if jobs.has_jobs:
            self.statusBar().showMessage("Stopping jobs…")
            jobs.all_done.connect(self.close, Qt.ConnectionType.SingleShotConnection)
            jobs.cancel_all()
            self.hide()
            event.ignore()
            return
        self.viewports.close()
        self.closed = True
        event.accept()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
