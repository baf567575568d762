"""``voxelstudio doctor`` and the KERAS_BACKEND check every Keras command makes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from voxelstudio.core.backends import BACKENDS, installed_backends
from voxelstudio.tasks.doctor import format_report


def _voxelstudio(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxelstudio", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip


def test_doctor_json_has_every_section_and_exits_0() -> None:
    result = _voxelstudio("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"python", "voxelstudio", "keras", "backends", "opengl", "qt", "memory"} <= set(report)
    assert report["qt"].get("error") != "not probed"  # the CLI hands the GUI layer's Qt probe to the task
    assert list(report["backends"]) == list(BACKENDS)
    for name, entry in report["backends"].items():
        assert entry["installed"] == (name in installed_backends())
        assert isinstance(entry["devices"], list)
        if entry["installed"]:
            assert entry["version"] and "error" not in entry, entry
        else:
            assert entry["version"] is None and entry["devices"] == []
    assert bool(report["opengl"].get("renderer")) != bool(report["opengl"].get("error")), report["opengl"]
    assert report["memory"]["available_bytes"] > 0 and report["memory"]["disk_free_bytes"] > 0
    text = format_report(report)
    assert f"VoxelStudio {report['voxelstudio']}" in text and "OpenGL:" in text and "Qt:" in text
    for name in BACKENDS:
        assert name in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [("mxnet", "KERAS_BACKEND='mxnet' is not a Keras backend; installed backends: ")],
)
def test_unknown_backend_is_one_line_and_exit_2(tmp_path, value: str, expected: str) -> None:
    result = _voxelstudio("denoise", str(tmp_path / "missing.mat"), KERAS_BACKEND=value)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert lines[0].endswith(", ".join(installed_backends()))


@pytest.mark.skipif("tensorflow" not in installed_backends(), reason="TensorFlow is not installed")
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="TensorFlow has oneDNN on x86 only")
@pytest.mark.parametrize(("setting", "expected"), [(None, True), ("0", False)])
def test_tensorflow_gets_onednn_kernels_unless_the_user_says_otherwise(setting: str | None, expected: bool) -> None:
    """TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI and newer; importing voxelstudio.ml
    turns it on elsewhere too, and a user's own setting wins. The backend probe reports what TensorFlow runs."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["KERAS_BACKEND"] = "tensorflow"
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    result = subprocess.run(
        [sys.executable, "-m", "voxelstudio.ml.probe"], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["onednn"] is expected


def test_the_report_says_whether_onednn_is_on() -> None:
    entry = {"installed": True, "version": "2.21.0", "devices": []}
    report = {
        "voxelstudio": "0", "python": "3", "keras": "3", "platform": "p", "backend": "tensorflow",
        "backends": {"tensorflow": {**entry, "onednn": False}, "jax": {**entry, "version": "0.4"}},
        "opengl": {"error": "none"}, "qt": {"error": "none"},
        "memory": {"available_bytes": 1, "total_bytes": 2, "disk_free_bytes": 3, "disk_path": "/"},
    }  # fmt: skip
    text = format_report(report)
    assert "tensorflow 2.21.0: CPU only; oneDNN CPU kernels off (set TF_ENABLE_ONEDNN_OPTS=1)" in text
    assert "jax 0.4: CPU only\n" in text
    report["backends"]["tensorflow"]["onednn_requested"] = True  # asked for, and still off: the build has none
    assert "tensorflow 2.21.0: CPU only; oneDNN CPU kernels not in this TensorFlow build" in format_report(report)
    report["backends"]["tensorflow"]["onednn"] = True
    assert "tensorflow 2.21.0: CPU only; oneDNN CPU kernels on" in format_report(report)


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}),
     ({"TF_ENABLE_ONEDNN_OPTS": "1"}, {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": None}),
     ({"TF_CPP_MIN_LOG_LEVEL": "0"}, {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "0"})],
)  # fmt: skip
def test_importing_ml_sets_tensorflows_switches_only_where_the_user_did_not(given, expected) -> None:
    """oneDNN on, and then TensorFlow's native log quiet (it logs an "E0000" line when it falls back to Eigen for
    int32 ops); a user's own settings are kept."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
    code = (
        "import os, sys, voxelstudio.ml\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), os.environ.get('TF_CPP_MIN_LOG_LEVEL'),"
        " 'tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, **given})
    assert result.returncode == 0, result.stderr
    switches = [str(expected["TF_ENABLE_ONEDNN_OPTS"]), str(expected["TF_CPP_MIN_LOG_LEVEL"])]
    assert result.stdout.split() == [*switches, "False"]  # and TensorFlow not started by the import


def test_the_report_says_when_the_jobs_backend_cannot_run() -> None:
    backends = {name: {"installed": name == "tensorflow", "version": "2", "devices": []} for name in BACKENDS}
    report = {"voxelstudio": "1", "python": "3.11", "keras": "3", "platform": "x", "backends": backends,
              "opengl": {"error": "-"}, "qt": {"error": "-"},
              "memory": {"available_bytes": 1, "total_bytes": 1, "disk_free_bytes": 1, "disk_path": "/"}}  # fmt: skip

    def backend_line(backend: str) -> str:
        return next(line for line in format_report({**report, "backend": backend}).splitlines() if "jobs" in line)

    assert backend_line("bogus").startswith("Backend for jobs: bogus (KERAS_BACKEND): not a Keras backend; set")
    assert backend_line("torch").endswith(
        "(KERAS_BACKEND): not installed, so every job fails; install it or choose another"
    )
    assert backend_line("tensorflow") == "Backend for jobs: tensorflow (KERAS_BACKEND)"
