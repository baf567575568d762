"""The View tab's colour choices kept between sessions (QSettings): the colormap shared by all panels and its
inversion, each panel's own colormap (a panel without one follows the shared choice: "linked"), and whether target
and predicted share contrast limits.

Saved whenever the view's style changes; restored into a new :class:`ViewState` before the window is built. A
value this version does not know (a colormap that was removed, a hand-edited file) is skipped, never an error.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QSettings

from voxelstudio.gui.view_state import ViewState
from voxelstudio.render.colormaps import colormap, split_name

CMAP_KEY = "view/colormap"
INVERT_KEY = "view/invert"
PANEL_CMAPS_KEY = "view/panel_colormaps"
LINK_CONTRAST_KEY = "view/link_contrast"


def save_view_preferences(settings: QSettings, view: ViewState) -> None:
    """Store ``view``'s colormap choices and contrast linking."""
    settings.setValue(CMAP_KEY, view.cmap)
    settings.setValue(INVERT_KEY, view.invert)
    settings.setValue(PANEL_CMAPS_KEY, json.dumps(view.panel_cmaps, sort_keys=True))
    settings.setValue(LINK_CONTRAST_KEY, view.link_contrast)


def _known_colormap(name: object) -> bool:
    if not isinstance(name, str):
        return False
    try:
        colormap(name)
    except ValueError:
        return False
    return True


def _panel_cmaps(settings: QSettings) -> dict[str, str]:
    """The saved per-panel colormaps that this version knows (full names, ``_r`` inverted)."""
    try:
        saved = json.loads(str(settings.value(PANEL_CMAPS_KEY, "{}")))
    except json.JSONDecodeError:
        return {}
    if not isinstance(saved, dict):
        return {}
    return {panel: name for panel, name in saved.items() if isinstance(panel, str) and _known_colormap(name)}


def restore_view_preferences(settings: QSettings, view: ViewState) -> None:
    """Apply the saved choices to ``view``; not an undo step."""
    changes: dict[str, object] = {}
    cmap = settings.value(CMAP_KEY)
    if cmap is not None and _known_colormap(cmap):
        changes["cmap"] = cmap
    for key, name in ((INVERT_KEY, "invert"), (LINK_CONTRAST_KEY, "link_contrast")):
        if settings.contains(key):
            changes[name] = settings.value(key, type=bool)
    with view.unrecorded():
        if changes:
            view.update(**changes)  # clears the panels' own colormaps: set them after
        for panel, name in _panel_cmaps(settings).items():
            view.set_panel_cmap(panel, *split_name(name))
    view.history.reset(view.snapshot())


def keep_view_preferences(settings: QSettings, view: ViewState) -> None:
    """Restore the saved choices into ``view``, then save them again whenever its style changes."""
    restore_view_preferences(settings, view)
    view.changed.connect(lambda aspect: save_view_preferences(settings, view) if aspect == "style" else None)
