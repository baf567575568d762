"""The app survives far more Qt-to-Python callbacks than None has references on a buggy PySide6 build."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QObject, QTimer

from voxelstudio.app import create_application
from voxelstudio.gui.pyside_fix import SPARE_REFERENCES, binding_drops_none_references

pytestmark = pytest.mark.gui


def test_none_outlives_many_callbacks(qapp):
    create_application()
    if binding_drops_none_references() and sys.version_info < (3, 12):
        assert sys.getrefcount(None) > SPARE_REFERENCES  # the workaround is in place
    calls = []
    probe = QObject()
    probe.objectNameChanged.connect(lambda _name: calls.append(1))
    timer = QTimer(interval=0)
    timer.timeout.connect(lambda: None)
    timer.start()
    callbacks = 2 * sys.getrefcount(None) if sys.getrefcount(None) < 10**6 else 50_000
    for index in range(callbacks // 2):
        probe.setObjectName(str(index))
        qapp.processEvents()
    timer.stop()
    assert len(calls) == callbacks // 2
