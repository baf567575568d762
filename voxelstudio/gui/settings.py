"""Persistent preferences (QSettings): last folder, recent files, window layout, training defaults.

The app uses the organisation/application names below; tests point QSettings at a temporary folder with
``QSettings.setPath`` (or pass their own QSettings object), so they never touch a user's preferences.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

ORGANIZATION = "VoxelStudio"
APPLICATION = "VoxelStudio"
MAX_RECENT_FILES = 8


def app_settings() -> QSettings:
    """The application's settings store (INI format, per user)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def last_folder(settings: QSettings) -> str:
    folder = str(settings.value("files/last_folder", "") or "")
    return folder if folder and Path(folder).is_dir() else str(Path.home())


def remember_file(settings: QSettings, path: str | Path) -> None:
    """Record ``path`` as the most recent file and its folder as the last folder."""
    path = Path(path).resolve()
    recent = [p for p in recent_files(settings) if p != str(path)]
    settings.setValue("files/recent", [str(path), *recent][:MAX_RECENT_FILES])
    settings.setValue("files/last_folder", str(path.parent))


def recent_files(settings: QSettings) -> list[str]:
    value = settings.value("files/recent", [])
    if isinstance(value, str):  # QSettings returns a lone string for a one-item list in INI files
        value = [value]
    return [str(v) for v in (value or [])]
