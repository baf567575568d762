"""A multiscale OME-Zarr opens at the finest level the 3-D view draws whole, says so, and loads a finer level from
the View panel."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.gui.conftest import wait_idle
from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume

pytestmark = pytest.mark.gui


def test_big_store_opens_at_a_coarse_level_and_a_finer_one_loads_on_request(qtbot, session, tmp_path, monkeypatch):
    data = np.random.default_rng(0).random((300, 260, 3)).astype(np.float32)
    save_volume(Volume(data, spacing=(0.2, 0.2, 1.0)), tmp_path / "big.ome.zarr")  # levels 300x260, 150x130
    monkeypatch.setattr("voxelstudio.render.grid.MAX_DISPLAY_VOXELS", 100_000)  # level 0 no longer fits
    messages: list[str] = []
    session.controller.status.connect(messages.append)
    session.commands.open_path(tmp_path / "big.ome.zarr", "raw")
    wait_idle(qtbot, session)
    raw = session.document.volume("raw")
    assert raw.shape == (150, 130, 3) and raw.spacing == pytest.approx((0.4, 0.4, 1.0))
    assert "at resolution level 1 of 1 (full resolution 300×260×3)" in messages[-1]
    assert "level 1" in session.window.viewports.panels["raw"].title.text()
    chooser = session.window.view_panel.resolution
    assert chooser.isEnabled() and [chooser.levels.itemText(i) for i in range(2)] == ["0: 300×260×3", "1: 150×130×3"]
    assert not chooser.load.isEnabled()  # the level shown
    chooser.levels.setCurrentIndex(0)
    if os.environ.get("VOXELSTUDIO_SCREENSHOT"):  # to look at by hand
        session.window.view_panel.grab().save(os.environ["VOXELSTUDIO_SCREENSHOT"])
    session.view.set_cursor((100, 30, 2))
    chooser.load.click()
    wait_idle(qtbot, session)
    raw = session.document.volume("raw")
    assert raw.shape == (300, 260, 3) and raw.metadata["level"] == "0"
    assert session.view.cursor == (200, 60, 2)  # the same place in the sample: coarse voxel 100 covers 200 and 201
    np.testing.assert_array_equal(raw.data, data)
    assert "level" not in session.window.viewports.panels["raw"].title.text().split("·")[-1]
    assert chooser.levels.currentIndex() == 0 and not chooser.load.isEnabled()
