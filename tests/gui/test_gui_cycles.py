"""Load -> denoise -> export, over and over in one window, leaks neither memory nor VTK actors nor Qt widgets.

Denoising runs TensorFlow in a child process and takes seconds, so most cycles put a prediction into the document
the way a finished denoise does; the slow variant also runs a few real denoise cycles with the bundled model.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import psutil
import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import wait_idle
from voxelstudio.io import load_volume

pytestmark = pytest.mark.gui
WARM_UP_CYCLES = 3
COUNTED_MODULES = ("pyvista", "vtkmodules", "matplotlib.image", "matplotlib.axes", "voxelstudio")


def _counted_type(obj) -> bool:
    module = getattr(type(obj), "__module__", None)
    return isinstance(module, str) and module.startswith(COUNTED_MODULES)


def census(session) -> dict:
    """What one window holds now: process RSS, Qt widgets, props per renderer, live pyvista/VTK/matplotlib and
    VoxelStudio objects (jobs, volumes...)."""
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QApplication.processEvents()
    gc.collect()
    panels = session.window.viewports.panels
    return {
        "rss": psutil.Process().memory_info().rss,
        "widgets": len(QApplication.allWidgets()),
        "props": {role: p.plotter.renderer.GetViewProps().GetNumberOfItems() for role, p in panels.items()},
        "actors": {role: len(p.plotter.actors) for role, p in panels.items()},
        "objects": sum(1 for obj in gc.get_objects() if _counted_type(obj)),
    }


def cycle(qtbot, session, out: Path, index: int, *, denoise: bool = False) -> None:
    """Open the sample, get a prediction (real or as a denoise would deliver it), export it, check the file."""
    controller, document = session.controller, session.document
    controller.open_sample()
    wait_idle(qtbot, session)
    raw = document.volume("raw")
    if denoise:
        controller.denoise()
        qtbot.waitUntil(lambda: not controller.busy and bool(document.metrics), timeout=300_000)
    else:
        prediction = raw.replace(data=np.sqrt(np.clip(raw.data, 0, None)) + index, name=f"{raw.name}_denoised")
        document.set_volume("prediction", prediction, {"method": "test cycle", "cycle": index})
        document.set_volume("uncertainty", raw.replace(data=np.full_like(raw.data, 0.01), name="uncertainty"))
    path = out / f"prediction{index % 2}.{('npy', 'tif')[index % 2]}"
    controller.export("prediction", path)
    wait_idle(qtbot, session)
    np.testing.assert_array_equal(load_volume(path).data, document.volume("prediction").data)
    session.window.viewports.render()


def run_cycles(qtbot, session, out: Path, cycles: int, *, denoise_cycles: int = 0) -> tuple[dict, dict]:
    for index in range(WARM_UP_CYCLES):  # a first real denoise loads the job and metrics machinery (~90 MB, once)
        cycle(qtbot, session, out, index, denoise=denoise_cycles > 0 and index == 0)
    before = census(session)
    for index in range(cycles):
        cycle(qtbot, session, out, index, denoise=index < denoise_cycles)
    return before, census(session)


def assert_no_leaks(before: dict, after: dict, *, rss_mb: float) -> None:
    assert after["widgets"] == before["widgets"], "Qt widgets leaked"
    assert after["props"] == before["props"], "props piled up in a renderer"
    assert after["actors"] == before["actors"], "actors piled up in a plotter"
    assert after["objects"] <= before["objects"] + 20, f"objects: {before} -> {after}"
    growth_mb = (after["rss"] - before["rss"]) / 2**20
    assert growth_mb < rss_mb, f"RSS grew by {growth_mb:.1f} MB"


def test_ten_cycles_leak_nothing(qtbot, session, tmp_path):
    before, after = run_cycles(qtbot, session, tmp_path, 10)
    assert_no_leaks(before, after, rss_mb=25)


@pytest.mark.slow
def test_hundred_cycles_with_real_denoising_leak_nothing(qtbot, session, tmp_path):
    before, after = run_cycles(qtbot, session, tmp_path, 100, denoise_cycles=3)
    assert_no_leaks(before, after, rss_mb=50)
