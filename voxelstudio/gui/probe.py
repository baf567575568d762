"""``python -m voxelstudio.gui.probe``: the Qt version and the platform plugin Qt starts with, printed as JSON.

Run by ``voxelstudio doctor`` in a child process: Qt aborts the process when its platform plugin cannot start.
"""

from __future__ import annotations

import json
import sys


def probe() -> dict[str, object]:
    """{"version", "platform"} once a QGuiApplication has started."""
    from PySide6 import QtCore
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    return {"version": QtCore.qVersion(), "pyside6": QtCore.__version__, "platform": app.platformName()}


if __name__ == "__main__":
    json.dump(probe(), sys.stdout)
