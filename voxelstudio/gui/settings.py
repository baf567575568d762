"""Persistent preferences (QSettings): last folder, recent files, window layout, training defaults (the View tab's
colours: :mod:`voxelstudio.gui.view_preferences`).

The app uses the organisation/application names below; tests point QSettings at a temporary folder with
``QSettings.setPath`` (or pass their own QSettings object), so they never touch a user's preferences.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtCore import QSettings

ORGANIZATION = "VoxelStudio"
APPLICATION = "VoxelStudio"
MAX_RECENT_FILES = 8


def app_settings() -> QSettings:
    """The application's settings store (INI format, per user)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def _package_folders() -> list[Path]:
    """Folders of the installed application (the package and its bundled resources): no dialog starts there."""
    import voxelstudio
    from voxelstudio.core.resources import resources_dir

    folders = [Path(voxelstudio.__file__).resolve().parent]
    with contextlib.suppress(FileNotFoundError):
        folders.append(resources_dir().resolve())
    return folders


def inside_package(folder: str | Path) -> bool:
    """Whether ``folder`` is in the installed package or its bundled resources (the sample, the models)."""
    folder = Path(folder).resolve()
    return any(folder == p or p in folder.parents for p in _package_folders())


def default_folder() -> str:
    """Where dialogs start before the user chose a folder: the home folder, else the current one."""
    for candidate in (Path.home(), Path.cwd()):
        if candidate.is_dir() and not inside_package(candidate):
            return str(candidate)
    return str(Path.home())


def last_folder(settings: QSettings) -> str:
    """The folder the user last opened or saved a file in, else :func:`default_folder`; never inside the package."""
    folder = str(settings.value("files/last_folder", "") or "")
    return folder if folder and Path(folder).is_dir() and not inside_package(folder) else default_folder()


def remember_file(settings: QSettings, path: str | Path) -> None:
    """Record ``path`` as the most recent file and its folder as the last folder (unless it is a bundled file,
    such as the sample: dialogs must not start inside the package)."""
    path = Path(path).resolve()
    recent = [p for p in recent_files(settings) if p != str(path)]
    settings.setValue("files/recent", [str(path), *recent][:MAX_RECENT_FILES])
    remember_folder(settings, path)


def remember_folder(settings: QSettings, path: str | Path) -> None:
    """Record the folder of ``path`` (a file that is not a volume: a model, a CSV) as the last folder only; Open
    Recent lists volumes alone."""
    folder = Path(path).resolve().parent
    if not inside_package(folder):
        settings.setValue("files/last_folder", str(folder))


def recent_files(settings: QSettings) -> list[str]:
    value = settings.value("files/recent", [])
    if isinstance(value, str):  # QSettings returns a lone string for a one-item list in INI files
        value = [value]
    return [str(v) for v in (value or [])]
