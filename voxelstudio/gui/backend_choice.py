"""The status bar's Keras backend box: only installed backends, remembered in QSettings, applied to the next job.

Jobs run in child processes that read ``KERAS_BACKEND`` when they start (``ml.quiet_start.start_backend_quietly``),
so choosing a backend sets that variable in the window's process: the next child uses it, a running one keeps its
own. Nothing here imports Keras or a framework.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QComboBox, QWidget

from voxelstudio.core.backends import DEFAULT, LABELS, installed_backends

SETTINGS_KEY = "jobs/backend"
ENV = "KERAS_BACKEND"


def initial_backend(settings: QSettings, installed: list[str], environ=os.environ) -> str | None:
    """The backend a new window starts with: ``KERAS_BACKEND`` when it was set at launch and is installed, else the
    remembered choice, else the default (or the first installed backend); None when none is installed."""
    launched = (environ.get(ENV) or "").strip().lower()
    remembered = str(settings.value(SETTINGS_KEY, "") or "")
    for candidate in (launched, remembered, DEFAULT, *installed):
        if candidate in installed:
            return candidate
    return None


def apply_backend(name: str) -> None:
    """Make ``name`` the backend of every job started from now on (they inherit the environment)."""
    os.environ[ENV] = name


class BackendBox(QComboBox):
    """Offers the installed Keras backends; ``backend_chosen(name)`` fires after the user picked another one (it
    has already been applied and remembered)."""

    backend_chosen = Signal(str)

    def __init__(self, settings: QSettings, parent: QWidget | None = None, installed: list[str] | None = None):
        super().__init__(parent)
        self.settings = settings
        self.setObjectName("backend_box")
        self.setToolTip(
            "Keras backend for the next training, denoising or classification job. Without a GPU, TensorFlow is "
            "the fastest here: JAX's CPU 3-D convolutions are about 15x slower"
        )
        installed = installed_backends() if installed is None else installed
        for name in installed:
            self.addItem(LABELS.get(name, name), name)
        chosen = initial_backend(settings, installed)
        if chosen is not None:
            self.setCurrentIndex(installed.index(chosen))
            apply_backend(chosen)
        self.setEnabled(self.count() > 1)
        self.activated.connect(lambda _index: self._chosen())

    @property
    def backend(self) -> str | None:
        return self.currentData()

    def choose(self, name: str) -> None:
        """Select ``name`` as the user would (tests, menus)."""
        index = self.findData(name)
        if index < 0:
            raise ValueError(f"{name} is not an installed backend")
        self.setCurrentIndex(index)
        self._chosen()

    def _chosen(self) -> None:
        name = self.backend
        if name is None:
            return
        changed = os.environ.get(ENV) != name
        apply_backend(name)
        self.settings.setValue(SETTINGS_KEY, name)
        if changed:
            self.backend_chosen.emit(name)
