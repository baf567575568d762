"""Cancelling the environment report kills its probes at once (a window closing during Help > Environment)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken
from voxelstudio.tasks import doctor


def test_cancel_stops_the_report_and_kills_every_probe(monkeypatch):
    started: list[subprocess.Popen] = []

    def hanging_probe(module: str, env=None):
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        started.append(process)
        return doctor._Probe(module, process)

    monkeypatch.setattr(doctor, "_start", hanging_probe)
    token = CancelToken()
    threading.Timer(0.5, token.cancel).start()
    with pytest.raises(Cancelled):  # the probes sleep a minute: without the cancel they would answer, not raise
        doctor.environment_report(qt_probe="voxelstudio.gui.probe", cancel=token)
    assert started and all(process.poll() is not None for process in started)  # killed, none left behind
