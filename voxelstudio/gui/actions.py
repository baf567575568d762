"""Menu and toolbar actions declared as data; the main window builds QActions and menus from this table.

``requires`` names conditions that must all hold for an action to be enabled: a loaded volume role ("raw",
"target", "prediction"), "model" (a trained or loaded model), "idle"/"busy" (whether a job runs), "stoppable" (a
job runs that Stop would stop) and "can_undo"/"can_redo" (the view history has a step to go back or forward to).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QToolBar, QWidget


@dataclass(frozen=True)
class ActionSpec:
    key: str
    text: str
    menu: str  # "File" or a sub-menu path such as "File/Export"
    shortcut: str = ""
    tip: str = ""
    toolbar: bool = False
    checkable: bool = False
    checked: bool = False
    requires: tuple[str, ...] = ()
    separator_before: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "open", "&Open…", "File", "Ctrl+O", "Open a volume (.mat, .tif, .npy, .npz, .zarr)", True, requires=("idle",)
    ),
    ActionSpec("open_raw", "Open &Raw…", "File", "Ctrl+Shift+R", "Open the noisy volume to clean", requires=("idle",)),
    ActionSpec(
        "open_target", "Open &Target…", "File", "Ctrl+Shift+T", "Open the clean reference volume", requires=("idle",)
    ),
    ActionSpec(
        "open_sample", "Open &Sample", "File", "", "Load the bundled raw/target bead sample", True, requires=("idle",)
    ),
    ActionSpec(
        "export_prediction",
        "Predicted…",
        "File/Export",
        "Ctrl+E",
        "Save the predicted volume",
        requires=("prediction", "idle"),
    ),
    ActionSpec("export_raw", "Raw…", "File/Export", requires=("raw", "idle")),
    ActionSpec("export_target", "Target…", "File/Export", requires=("target", "idle")),
    ActionSpec("export_uncertainty", "Uncertainty…", "File/Export", requires=("uncertainty", "idle")),
    ActionSpec("screenshot", "Save &Screenshot…", "File", "Ctrl+Shift+S", "Save the 3-D panels as a PNG image"),
    ActionSpec("quit", "&Quit", "File", "Ctrl+Q", separator_before=True),
    ActionSpec(
        "undo",
        "&Undo View Change",
        "Edit",
        "Ctrl+Z",
        "Undo the last change of contrast, colormap, opacity, iso level, render mode or camera",
        requires=("can_undo",),
    ),
    ActionSpec(
        "redo", "&Redo View Change", "Edit", "Ctrl+Shift+Z", "Redo the view change undone last", requires=("can_redo",)
    ),
    ActionSpec("load_model", "&Load Model…", "Model", "", "Use a saved .keras denoiser", requires=("idle",)),
    ActionSpec("save_model", "&Save Model…", "Model", "", "Save the current model", requires=("model", "idle")),
    ActionSpec(
        "use_default_model",
        "Use &Bundled Model",
        "Model",
        "",
        "Denoise with the model shipped with the app",
        requires=("idle",),
    ),
    ActionSpec(
        "train",
        "&Train",
        "Run",
        "Ctrl+T",
        "Train a denoiser on the loaded raw/target pair or the folders chosen in the Train panel",
        True,
        requires=("idle",),  # and what the Train panel needs: see TrainPanel.ready_changed
    ),
    ActionSpec(
        "denoise",
        "&Denoise",
        "Run",
        "Ctrl+D",
        "Clean the raw volume with the current model",
        True,
        requires=("raw", "idle"),
    ),
    ActionSpec(
        "deconvolve",
        "&Richardson–Lucy Baseline",
        "Run",
        "",
        "Classical deconvolution of the raw volume",
        requires=("raw", "idle"),
    ),
    ActionSpec(
        "evaluate",
        "Compute &Metrics",
        "Run",
        "Ctrl+M",
        "Compare the prediction with the target",
        requires=("prediction", "target", "idle"),
    ),
    ActionSpec(
        "stop",
        "&Stop",
        "Run",
        "Esc",
        "Stop the running job (keeps the best model so far)",
        True,
        requires=("stoppable",),
        separator_before=True,
    ),
    ActionSpec("reset_camera", "&Reset Camera", "View", "Ctrl+0", "Show the whole volume in every panel", True),
    ActionSpec("show_residual", "Show &Residual Panel", "View", "", "Add a predicted − target panel", checkable=True),
    ActionSpec(
        "environment", "&Environment…", "Help", "", "Versions, Keras backends and their devices, OpenGL, memory, disk"
    ),
    ActionSpec("about", "&About VoxelStudio", "Help"),
)


def build_actions(parent: QWidget, specs: Iterable[ActionSpec] = ACTIONS) -> dict[str, QAction]:
    """One QAction per spec, keyed by ``spec.key``."""
    actions = {}
    for spec in specs:
        action = QAction(spec.text, parent)
        action.setObjectName(f"action_{spec.key}")
        if spec.shortcut:
            action.setShortcut(QKeySequence(spec.shortcut))
        if spec.tip:
            action.setStatusTip(spec.tip)
            action.setToolTip(spec.tip)
        action.setCheckable(spec.checkable)
        action.setChecked(spec.checked)
        actions[spec.key] = action
    return actions


def populate_menus(
    menubar: QMenuBar, actions: Mapping[str, QAction], specs: Iterable[ActionSpec] = ACTIONS
) -> dict[str, QMenu]:
    """Add every action to its (sub-)menu, creating menus in order of first use; returns menus by path."""
    menus: dict[str, QMenu] = {}
    for spec in specs:
        menu = _menu(menubar, menus, spec.menu)
        if spec.separator_before:
            menu.addSeparator()
        menu.addAction(actions[spec.key])
    return menus


def _menu(menubar: QMenuBar, menus: dict[str, QMenu], path: str) -> QMenu:
    if path not in menus:
        parent_path, _, title = path.rpartition("/")
        owner = _menu(menubar, menus, parent_path) if parent_path else menubar
        menus[path] = owner.addMenu(f"&{title}")
    return menus[path]


def populate_toolbar(toolbar: QToolBar, actions: Mapping[str, QAction], specs: Iterable[ActionSpec] = ACTIONS) -> None:
    for spec in specs:
        if spec.toolbar:
            if spec.separator_before:
                toolbar.addSeparator()
            toolbar.addAction(actions[spec.key])


def update_enabled(actions: Mapping[str, QAction], conditions: set[str], specs: Iterable[ActionSpec] = ACTIONS) -> None:
    """Enable each action whose ``requires`` all hold in ``conditions``."""
    for spec in specs:
        actions[spec.key].setEnabled(all(name in conditions for name in spec.requires))
