"""Opening, picking variables, failing readably, exporting with provenance, recent files."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import scipy.io

from tests.gui.conftest import wait_idle
from voxelstudio.core.volume import Volume
from voxelstudio.gui.job_handlers import JobHandler
from voxelstudio.gui.settings import recent_files
from voxelstudio.io import load_volume

pytestmark = pytest.mark.gui


def _cube(seed: int, shape=(12, 10, 6)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_variable_picker_chooses_among_several_arrays(qtbot, session, tmp_path, monkeypatch):
    path = tmp_path / "two.mat"
    scipy.io.savemat(path, {"first": _cube(1), "second": _cube(2), "label": np.array([[1.0]])})
    offered = []

    def pick(parent, file, variables):
        offered.extend(v.name for v in variables)
        return "second"

    monkeypatch.setattr("voxelstudio.gui.dialogs.pick_variable", pick)
    session.commands.open_path(path, "raw")
    wait_idle(qtbot, session)
    assert offered == ["first", "second"]
    np.testing.assert_array_equal(session.document.volume("raw").data, _cube(2))
    assert recent_files(session.settings)[0] == str(path.resolve())


def test_corrupt_file_shows_an_error_and_the_app_stays_usable(qtbot, session, tmp_path, dialogs):
    bad = tmp_path / "broken.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00garbage" * 40)
    session.commands.open_path(bad, "raw")
    wait_idle(qtbot, session)
    assert len(dialogs.errors) == 1
    title, message, details = dialogs.errors[0]
    assert "broken.mat" in title + message and "\n" not in message
    assert details  # the traceback sits behind "Show Details..."
    assert session.document.volume("raw") is None
    assert session.window.action_map["open"].isEnabled() and not session.controller.busy
    good = tmp_path / "good.npy"
    np.save(good, _cube(3))
    session.commands.open_path(good, "raw")
    wait_idle(qtbot, session)
    assert session.document.volume("raw").shape == (12, 10, 6)


def test_missing_and_unsupported_files_are_reported(qtbot, session, tmp_path, dialogs):
    session.controller.open_volume(tmp_path / "nowhere.tif", "target")
    wait_idle(qtbot, session)
    (tmp_path / "notes.txt").write_text("hello")
    session.commands.open_path(tmp_path / "notes.txt", "target")
    wait_idle(qtbot, session)
    messages = [message for _, message, _ in dialogs.errors]
    assert len(messages) == 2
    assert "nowhere.tif" in messages[0] and "notes.txt" in messages[1]


@pytest.mark.parametrize("suffix", [".mat", ".tif", ".npy"])
def test_export_round_trips_with_a_provenance_sidecar(qtbot, session, tmp_path, suffix):
    data = _cube(4)
    session.document.set_volume("raw", Volume(data, spacing=(0.2, 0.2, 0.5), name="raw"))
    made_by = {"method": "test", "model": "tiny.keras"}
    session.document.set_volume("prediction", Volume(data * 2, spacing=(0.2, 0.2, 0.5), name="pred"), made_by)
    out = tmp_path / f"exported{suffix}"
    session.controller.export("prediction", out)
    wait_idle(qtbot, session)
    np.testing.assert_array_equal(load_volume(out).data, data * 2)
    sidecar = json.loads((tmp_path / f"exported{suffix}.json").read_text())
    assert sidecar["made_by"] == {"method": "test", "model": "tiny.keras"}
    assert sidecar["shape"] == [12, 10, 6] and sidecar["role"] == "prediction"
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*"))


def test_export_through_the_menu_uses_the_chosen_path(qtbot, session, tmp_path, monkeypatch):
    session.document.set_volume("raw", Volume(_cube(5), name="raw"))
    target = tmp_path / "chosen.npy"
    monkeypatch.setattr("voxelstudio.gui.dialogs.get_save_path", lambda *args: str(target))
    assert session.window.action_map["export_raw"].isEnabled()
    session.window.action_map["export_raw"].trigger()
    wait_idle(qtbot, session)
    np.testing.assert_array_equal(np.load(target), _cube(5))


def test_dropped_file_opens_as_the_chosen_role(qtbot, session, tmp_path, monkeypatch):
    path = tmp_path / "dropped.npy"
    np.save(path, _cube(6))
    monkeypatch.setattr("voxelstudio.gui.dialogs.ask_role", lambda parent, file: "target")
    session.window.files_dropped.emit([str(path)])
    wait_idle(qtbot, session)
    assert session.document.volume("target").name == "dropped"


def test_files_dropped_together_open_together_raw_first(qtbot, session, tmp_path, monkeypatch):
    for name, value in (("clean.npy", 3), ("noisy.npy", 4)):
        np.save(tmp_path / name, _cube(value))
    roles = {"clean.npy": "target", "noisy.npy": "raw"}
    monkeypatch.setattr("voxelstudio.gui.dialogs.ask_role", lambda parent, file: roles[file.name])
    jobs = []
    session.controller.jobs.job_started.connect(jobs.append)
    changed = []
    session.document.volume_changed.connect(changed.append)

    session.window.files_dropped.emit([str(tmp_path / "clean.npy"), str(tmp_path / "noisy.npy")])
    wait_idle(qtbot, session)

    assert len(jobs) == 1  # one load: a second job would have been refused while the first ran
    np.testing.assert_array_equal(session.document.volume("target").data, _cube(3))
    np.testing.assert_array_equal(session.document.volume("raw").data, _cube(4))
    assert changed.index("raw") < changed.index("target")  # a new raw volume drops what was made from the old one


def test_of_files_dropped_together_the_readable_ones_open_and_the_others_are_named(
    qtbot, session, tmp_path, monkeypatch, dialogs
):
    np.save(tmp_path / "good.npy", _cube(6))
    (tmp_path / "broken.npy").write_bytes(b"not a volume")
    (tmp_path / "also.npy").write_bytes(b"")
    roles = {"good.npy": "raw", "broken.npy": "target", "also.npy": "target"}
    monkeypatch.setattr("voxelstudio.gui.dialogs.ask_role", lambda parent, file: roles[file.name])
    statuses = []
    session.controller.status.connect(statuses.append)

    session.window.files_dropped.emit([str(tmp_path / n) for n in ("good.npy", "broken.npy", "also.npy")])
    wait_idle(qtbot, session)

    np.testing.assert_array_equal(session.document.volume("raw").data, _cube(6))
    assert session.document.volume("target") is None
    assert any("not opening broken.npy" in s for s in statuses)  # two files answered "target": the last one is tried
    (_title, message, _details), *_ = dialogs.errors
    assert "also.npy" in message and "good.npy" not in message


def test_opening_while_a_job_runs_asks_nothing_and_says_why(qtbot, session, tmp_path, monkeypatch):
    np.save(tmp_path / "later.npy", _cube(5))
    asked = []
    monkeypatch.setattr("voxelstudio.gui.dialogs.ask_role", lambda parent, file: asked.append(file) or "raw")
    release = threading.Event()
    session.controller.jobs.start("training", lambda report, cancel: release.wait(30), JobHandler())
    try:
        assert not session.window.action_map["open"].isEnabled()
        session.window.files_dropped.emit([str(tmp_path / "later.npy")])
        assert asked == [] and "Wait for training to finish" in session.window.statusBar().currentMessage()
    finally:
        release.set()
    wait_idle(qtbot, session)
    assert session.window.action_map["open"].isEnabled() and session.document.volume("raw") is None


def test_screenshot_writes_a_png_of_the_panels(qtbot, session, tmp_path):
    from PySide6.QtGui import QImage

    session.document.set_volume("raw", Volume(_cube(7), name="raw"))
    out = tmp_path / "panels.png"
    assert session.commands.write_screenshot(out)
    image = QImage(str(out)).convertToFormat(QImage.Format.Format_RGB888)
    assert image.width() > 300 and image.height() > 100
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    colours = np.unique(pixels[:, : 3 * image.width()].reshape(-1, 3), axis=0)
    assert len(colours) > 50  # the panels' pictures, not a blank image of their size


def test_recent_files_menu_reopens_a_file(qtbot, session, tmp_path, monkeypatch):
    path = tmp_path / "again.npy"
    np.save(path, _cube(8))
    session.controller.open_volume(path, "raw")
    wait_idle(qtbot, session)
    menu = session.window.recent_menu
    menu.aboutToShow.emit()
    assert [action.text() for action in menu.actions()] == ["again.npy"]
    monkeypatch.setattr("voxelstudio.gui.dialogs.ask_role", lambda parent, file: "target")
    menu.actions()[0].trigger()
    wait_idle(qtbot, session)
    np.testing.assert_array_equal(session.document.volume("target").data, _cube(8))
