"""The window's jobs as Qt-free tasks: run here without Qt, as the CLI or a test would."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken, Progress
from voxelstudio.core.volume import Volume
from voxelstudio.jobs import work
from voxelstudio.tasks.denoise import denoise_volume


def run(task):
    events = []
    return task(events.append, CancelToken()), events


def volume(seed: int, name: str) -> Volume:
    return Volume(np.random.default_rng(seed).random((8, 8, 4)).astype(np.float32), (0.1, 0.1, 0.2), name=name)


def test_export_then_load_round_trips_with_provenance(tmp_path):
    original = volume(0, "scan")
    written, _ = run(work.export_volume(original, tmp_path / "scan.tif", {"method": "test"}))
    assert json.loads((tmp_path / "scan.tif.json").read_text())["method"] == "test"
    loaded, _ = run(work.load_volumes({"raw": (written, None)}))
    np.testing.assert_array_equal(loaded["raw"].data, original.data)


def test_stop_during_loading_or_before_an_export_applies_nothing(tmp_path, monkeypatch):
    """A Stop while a file loads ends the job as cancelled once the read returns (a read cannot be interrupted), so
    the window keeps what it had open; an export stopped before it starts writes nothing."""
    from voxelstudio import io

    written, _ = run(work.export_volume(volume(0, "scan"), tmp_path / "scan.npy", {}))
    stop = CancelToken()
    reads = []

    def read_then_stop(path, variable=None):
        reads.append(path)
        stop.cancel()  # the user pressed Stop while this file was being read
        return Volume(np.zeros((4, 4, 4), np.float32), name="scan")

    monkeypatch.setattr(io, "load_volume", read_then_stop)
    with pytest.raises(Cancelled):
        work.load_volumes({"raw": (written, None), "target": (written, None)})(print, stop)
    assert reads == [written]  # the second file was not read
    with pytest.raises(Cancelled):
        work.export_volume(volume(1, "other"), tmp_path / "other.tif", {})(print, stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.npy", "scan.npy.json"]


def test_copy_is_atomic_and_returns_the_path(tmp_path):
    source = tmp_path / "model.keras"
    source.write_bytes(b"weights")
    written, _ = run(work.copy_file(source, tmp_path / "saved.keras"))
    assert written.read_bytes() == b"weights" and sorted(p.name for p in tmp_path.iterdir()) == [
        "model.keras", "saved.keras",
    ]  # fmt: skip


def test_thread_tasks_take_arguments_named_like_their_own_parameters():
    target = volume(1, "target")
    metrics, _ = run(work.evaluate(target, target, None))  # "target" is also in_thread's own first parameter
    assert metrics["pred"]["psnr"] > 90


def test_progress_reaches_the_report_of_thread_tasks():
    result, events = run(work.deconvolve(volume(2, "raw"), iterations=2))
    assert result.shape == (8, 8, 4)
    steps = [(event.done, event.total) for event in events if isinstance(event, Progress)]
    assert steps and steps[-1] == (2, 2)


def test_child_tasks_resolve_their_function_and_make_the_folder_first(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(work, "run_isolated", lambda function, arguments, **_: calls.append((function, arguments)))
    run(work.in_child("voxelstudio.tasks.denoise:denoise_volume", make_folder=tmp_path / "run", volume="v"))
    assert (tmp_path / "run").is_dir() and calls == [(denoise_volume, {"volume": "v"})]


def test_a_multiscale_store_opens_coarse_and_a_damaged_pyramid_at_full_resolution(tmp_path, monkeypatch):
    import shutil

    from voxelstudio.io import save_volume
    from voxelstudio.io.zarr_ import levels

    store = save_volume(volume(3, "big").replace(data=np.ones((300, 260, 3), np.float32)), tmp_path / "big.ome.zarr")
    assert len(levels(store)) > 1
    monkeypatch.setattr("voxelstudio.render.grid.MAX_DISPLAY_VOXELS", 100_000)  # level 0 is "too big to draw"
    loaded, _ = run(work.load_volumes({"raw": (store, None)}))
    assert loaded["raw"].shape[0] < 300 and work.level_to_open(store) is not None
    shutil.rmtree(store / levels(store)[1].path)  # a damaged lower level: still opens, at full resolution
    loaded, _ = run(work.load_volumes({"raw": (store, None)}))
    assert loaded["raw"].shape == (300, 260, 3)


def test_read_planes_reads_the_three_planes_of_one_level_and_none_from_a_bad_store(tmp_path):
    from voxelstudio.io import save_volume

    data = np.random.default_rng(2).random((40, 30, 5)).astype(np.float32)
    save_volume(Volume(data, (0.1, 0.1, 0.5)), tmp_path / "s.ome.zarr")
    planes, _ = run(work.read_planes(tmp_path / "s.ome.zarr", "0", (7, 11, 3)))
    np.testing.assert_array_equal(planes["xy"], data[:, :, 3])
    np.testing.assert_array_equal(planes["xz"], data[7, :, :].T)
    np.testing.assert_array_equal(planes["yz"], data[:, 11, :])
    assert run(work.read_planes(tmp_path / "missing.ome.zarr", "0", (0, 0, 0)))[0] is None


def test_read_planes_leaves_out_planes_too_big_to_read(tmp_path, monkeypatch):
    from voxelstudio.io import save_volume

    data = np.random.default_rng(2).random((40, 30, 5)).astype(np.float32)
    save_volume(Volume(data, (0.1, 0.1, 0.5)), tmp_path / "s.ome.zarr")
    monkeypatch.setattr(work, "MAX_PLANE_VOXELS", 40 * 5)  # the XY plane (40 x 30) is over it, XZ and YZ are not
    planes, _ = run(work.read_planes(tmp_path / "s.ome.zarr", "0", (7, 11, 3)))
    assert sorted(planes) == ["xz", "yz"]
    np.testing.assert_array_equal(planes["yz"], data[:, 11, :])
