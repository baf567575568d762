"""``voxelstudio gui`` and plain ``voxelstudio`` reach the app with the right start-up data, cheaply."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from voxelstudio.cli import main
from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume


@pytest.fixture
def launched(monkeypatch):
    calls = []
    monkeypatch.setattr("voxelstudio.app.run_app", lambda files=(), *, sample=False: calls.append((files, sample)) or 0)
    return calls


def test_plain_voxelstudio_opens_the_window(launched):
    assert main([]) == 0
    assert launched == [([], False)]


def test_gui_sample_and_files(launched, tmp_path):
    raw, target = tmp_path / "raw.npy", tmp_path / "target.npy"
    for path in (raw, target):
        np.save(path, np.zeros((4, 4, 4), np.float32))
    assert main(["gui", "--sample"]) == 0
    assert main(["gui", str(raw), str(target)]) == 0
    store = save_volume(Volume(np.zeros((4, 4, 4), np.float32)), tmp_path / "scan.ome.zarr")  # a folder, but a volume
    assert main(["gui", str(store)]) == 0
    assert launched == [([], True), ([raw, target], False), ([store], False)]


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["gui", "missing.mat"], "missing.mat: no such file"),
        (["gui", "."], ".: is a folder, not a volume file"),
        (["gui", "--sample", "x.mat"], "not both"),
        (["gui", "a", "b", "c"], "at most two files"),
    ],
)
def test_bad_arguments_fail_with_one_line(launched, capsys, argv, problem):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1
    assert launched == []


def test_without_a_display_the_window_is_one_line_not_a_qt_abort(launched, capsys, monkeypatch):
    """Over plain ssh Qt aborted the process (exit 134, a core dump) after a page of plugin advice."""
    from voxelstudio.cli.gui_commands import check_display

    for variable in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["gui"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no display to open the window on (DISPLAY is not set)" in err
    assert launched == []
    check_display({"QT_QPA_PLATFORM": "offscreen"}, "linux")  # a platform chosen on purpose
    check_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    check_display({}, "win32")


def test_gui_command_module_imports_no_qt_or_tensorflow():
    code = (
        "import sys, voxelstudio.cli.gui_commands; "
        "print(any(m.startswith(('PySide6', 'tensorflow', 'vtk')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.gui
def test_app_module_does_not_import_tensorflow():
    code = "import sys, voxelstudio.app; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


@pytest.mark.gui
def test_gui_sample_shows_the_sample_in_a_real_window(tmp_path):
    """The installed entry point, end to end: the window opens and draws the sample (traced start-up line)."""
    import os
    import signal

    from voxelstudio.app import FIRST_FRAME_LINE, TRACE_STARTUP_ENV

    env = {**os.environ, TRACE_STARTUP_ENV: "1", "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "voxelstudio", "gui", "--sample"], env=env, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if line.startswith(FIRST_FRAME_LINE):
                break
        assert lines and lines[-1].startswith(FIRST_FRAME_LINE), "".join(lines)
        assert not any("Traceback" in line for line in lines)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
