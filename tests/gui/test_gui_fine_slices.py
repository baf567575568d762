"""A multiscale OME-Zarr shown at a coarse level: the slice views show the coarse planes at once, then the planes
through the cursor read from the full-resolution level, over the same physical extent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.gui.conftest import wait_idle
from voxelstudio.core.volume import Volume
from voxelstudio.gui.fine_slices import FinePlanes, PlaneRequest, fine_extents, plane_request
from voxelstudio.io import load_volume, save_volume

pytestmark = pytest.mark.gui
FULL = (300, 260, 3)


@pytest.fixture
def store(tmp_path):
    data = np.random.default_rng(0).random(FULL).astype(np.float32)
    save_volume(Volume(data, spacing=(0.2, 0.2, 1.0)), tmp_path / "big.ome.zarr")  # levels 300x260x3, 150x130x3
    return tmp_path / "big.ome.zarr", data


def panel_probe(session, index):
    return session.window.slices.probe_text(index)


def shown(panel, plane):
    """The array the panel draws for ``plane`` (empty before the panel first drew a volume)."""
    image = panel._images.get(plane)
    return np.empty((0, 0)) if image is None else np.asarray(image.get_array())


def test_slice_views_of_a_coarse_level_end_up_showing_full_resolution_planes(qtbot, session, store, monkeypatch):
    path, data = store
    monkeypatch.setattr("voxelstudio.render.grid.MAX_DISPLAY_VOXELS", 100_000)  # level 0 no longer fits
    session.commands.open_path(path, "raw")
    wait_idle(qtbot, session)
    assert session.document.volume("raw").shape == (150, 130, 3)
    panel = session.window.slices.panels["raw"]
    qtbot.waitUntil(lambda: shown(panel, "xy").shape == (300, 260), timeout=30_000)  # after the 3-D views drew
    y, x, z = session.view.cursor
    np.testing.assert_array_equal(shown(panel, "xy"), data[:, :, z])
    np.testing.assert_array_equal(shown(panel, "xz"), data[2 * y, :, :].T)  # coarse voxel y covers 2y and 2y+1
    np.testing.assert_array_equal(shown(panel, "yz"), data[:, 2 * x, :])
    # the same physical extent as the coarse level (0.4 µm voxels from -0.2 µm), drawn with 0.2 µm voxels
    assert panel._images["xy"].get_extent() == pytest.approx((-0.2, 51.8, 59.8, -0.2))
    assert panel._axes["xy"].get_xlim() == pytest.approx((-0.2, 51.8))

    assert panel_probe(session, (10, 20, 2)).startswith("level 1 voxel (y, x, z) = (10, 20, 2)")
    session.view.set_cursor((10, 20, 2))
    assert shown(panel, "xy").shape == (150, 130)  # the coarse plane at once, no wait on the GUI thread
    qtbot.waitUntil(lambda: shown(panel, "xy").shape == (300, 260), timeout=30_000)
    np.testing.assert_array_equal(shown(panel, "xy"), data[:, :, 2])
    np.testing.assert_array_equal(shown(panel, "xz"), data[20, :, :].T)
    np.testing.assert_array_equal(shown(panel, "yz"), data[:, 40, :])


def test_plane_requests_map_coarse_voxels_and_only_for_coarse_levels(store):
    path, _ = store
    full, coarse = load_volume(path, "0"), load_volume(path, "1")
    assert plane_request(full, (5, 5, 1)) is None and plane_request(None, (0, 0, 0)) is None
    request = plane_request(coarse, (149, 0, 2))
    assert request == PlaneRequest(path, "0", (298, 0, 2), (0.4, 0.4, 1.0), FULL, (0.2, 0.2, 1.0))
    extents = fine_extents(request)
    assert extents["xz"] == pytest.approx((-0.2, 51.8, 2.5, -0.5))  # z is not reduced: no shift
    assert extents["yz"] == pytest.approx((-0.5, 2.5, 59.8, -0.2))
    # the voxel size applied by the user (or unknown: 1 per axis) leaves the levels' own spacing behind; the
    # factor between them comes from the shapes, and the fine planes are drawn in the coarse volume's frame
    resized = coarse.replace(spacing=(1.0, 1.0, 1.0))
    request = plane_request(resized, (149, 0, 2))
    assert request.index == (298, 0, 2) and request.fine_spacing == pytest.approx((0.5, 0.5, 1.0))


def test_one_read_at_a_time_and_only_the_latest_wish_is_read(qapp):
    reads, applied = [], []
    planes = FinePlanes(
        lambda request, done: reads.append((request, done)) or True,
        lambda role, request, found: applied.append((role, request.index)),
    )
    make = [PlaneRequest(Path("s"), "0", (i, 0, 0), (2.0, 2.0, 1.0), (9, 9, 1), (1.0, 1.0, 1.0)) for i in range(3)]
    planes.want("raw", make[0])
    planes.want("raw", make[1])  # while the first read runs
    planes.want("raw", make[2])
    assert len(reads) == 1
    reads[0][1]({"xy": 0})  # the first read ends: the panel no longer wants it, the latest wish is read next
    assert applied == [] and [r.index for r, _ in reads] == [(0, 0, 0), (2, 0, 0)]
    reads[1][1]({"xy": 2})
    assert applied == [("raw", (2, 0, 0))]
    planes.want("raw", make[0])  # read before: from the cache, no new read
    assert applied[-1] == ("raw", (0, 0, 0)) and len(reads) == 2
    planes.want("target", make[1])
    reads[2][1](None)  # could not be read: nothing shown, not asked again
    planes.want("target", make[1])
    assert len(reads) == 3 and applied[-1] == ("raw", (0, 0, 0))
