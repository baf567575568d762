"""``voxelstudio doctor``: what this machine offers VoxelStudio (Python, Keras backends and their devices, OpenGL,
Qt, memory and disk), gathered without importing any framework into this process.

Each backend, the OpenGL context and the Qt platform are probed in a child process of their own (in parallel), so a
broken CUDA install or a missing display is reported as one line instead of crashing the report.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import voxelstudio
from voxelstudio.core.backends import BACKENDS, ONEDNN_VARIABLE, installed_backends, requested_backend
from voxelstudio.core.progress import CancelToken

PROBE_TIMEOUT_S = 120.0
"""A probe that takes longer (a GPU driver hanging on start-up) is reported as not answering."""
POLL_S = 0.2
"""How often a wait for a probe looks at the cancel token."""


@dataclass
class _Probe:
    module: str
    process: subprocess.Popen[str]


def _start(module: str, env: dict[str, str] | None = None) -> _Probe:
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return _Probe(module, process)


def _finish(probe: _Probe, timeout: float, cancel: CancelToken | None = None) -> dict[str, Any]:
    """The probe's JSON, or {"error": one line} when it failed, crashed or did not answer in time; raises
    :class:`~voxelstudio.core.errors.Cancelled` (the caller kills the probes) as soon as ``cancel`` is set."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = probe.process.communicate(timeout=max(min(POLL_S, deadline - time.monotonic()), 0.001))
            break
        except subprocess.TimeoutExpired:
            if cancel is not None:
                cancel.raise_if_cancelled("environment report")
            if time.monotonic() >= deadline:
                probe.process.kill()
                probe.process.communicate()
                return {"error": f"no answer within {timeout:.0f} s"}
    if probe.process.returncode == 0:
        try:
            return dict(json.loads(out))
        except (json.JSONDecodeError, TypeError, ValueError):
            pass
    return {"error": _last_problem(err) or f"exit code {probe.process.returncode}"}


def _last_problem(stderr: str) -> str:
    """The most telling line of a failed probe's stderr: an exception's last line or Qt's own complaint."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "could not connect to display" in line or "no Qt platform plugin could be initialized" in line:
            return line.removeprefix("qt.qpa.xcb: ")
    return lines[-1] if lines else ""


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_report(
    *,
    timeout: float = PROBE_TIMEOUT_S,
    disk_path: str | Path = ".",
    qt_probe: str | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Everything ``voxelstudio doctor --json`` prints: keys ``python``, ``voxelstudio``, ``keras``, ``platform``,
    ``backend`` (the one jobs will use), ``backends`` (name -> {installed, version, devices[, onednn,
    onednn_requested][, error]}: whether TensorFlow's oneDNN CPU kernels are on, and were asked for), ``opengl``,
    ``qt``, ``memory``. ``qt_probe`` names the module that probes Qt (the GUI layer's, passed in by the caller: tasks
    know nothing of Qt); without it ``qt`` says it was not probed. Setting ``cancel`` stops at once: every probe
    still running is killed (a window closing during Help > Environment leaves no process behind)."""
    installed = installed_backends()
    probes = {name: _start("voxelstudio.ml.probe", {"KERAS_BACKEND": name}) for name in installed}
    opengl = _start("voxelstudio.render.probe")
    qt = None if qt_probe is None else _start(qt_probe)
    try:
        return _gather(probes, opengl, qt, timeout, disk_path, cancel)
    finally:
        for probe in (*probes.values(), opengl, *([qt] if qt is not None else [])):
            if probe.process.poll() is None:
                probe.process.kill()
                probe.process.communicate()


def _gather(
    probes: dict[str, _Probe], opengl: _Probe, qt: _Probe | None, timeout: float, disk_path: str | Path,
    cancel: CancelToken | None,
) -> dict[str, Any]:  # fmt: skip
    installed = list(probes)
    backends: dict[str, Any] = {}
    for name in BACKENDS:
        if name not in installed:
            backends[name] = {"installed": False, "version": None, "devices": []}
            continue
        found = _finish(probes[name], timeout, cancel)
        entry = {"installed": True, "version": found.get("version"), "devices": found.get("devices", [])}
        backends[name] = {
            **entry,
            **{key: found[key] for key in ("onednn", "onednn_requested", "error") if key in found},
        }
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(disk_path))
    return {
        "python": platform.python_version(),
        "voxelstudio": voxelstudio.__version__,
        "keras": _version("keras"),
        "platform": platform.platform(),
        "backend": requested_backend(),
        "backends": backends,
        "opengl": _finish(opengl, timeout, cancel),
        "qt": {
            **(_finish(qt, timeout, cancel) if qt is not None else {"error": "not probed"}),
            "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM"),
        },
        "memory": {
            "total_bytes": int(memory.total),
            "available_bytes": int(memory.available),
            "disk_path": str(Path(disk_path).resolve()),
            "disk_free_bytes": int(disk.free),
        },
    }


def _gib(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**30:.1f} GiB"


def _onednn_state(entry: dict[str, Any]) -> str:
    if entry["onednn"]:
        return "on"
    return "not in this TensorFlow build" if entry.get("onednn_requested") else f"off (set {ONEDNN_VARIABLE}=1)"


def _backend_problem(report: dict[str, Any]) -> str:
    """Why the jobs' backend cannot run (every training and prediction fails then), or nothing."""
    entry = report["backends"].get(report["backend"])
    if entry is None:
        return f": not a Keras backend; set KERAS_BACKEND to one of {', '.join(report['backends'])}"
    return "" if entry["installed"] else ": not installed, so every job fails; install it or choose another"


def format_report(report: dict[str, Any]) -> str:
    """The report as the short text ``voxelstudio doctor`` prints and Help > Environment shows."""
    lines = [
        f"VoxelStudio {report['voxelstudio']}, Python {report['python']}, Keras {report['keras'] or 'not installed'}",
        f"Platform: {report['platform']}",
        f"Backend for jobs: {report['backend']} (KERAS_BACKEND){_backend_problem(report)}",
    ]
    for name, entry in report["backends"].items():
        if not entry["installed"]:
            lines.append(f"  {name}: not installed")
            continue
        if "error" in entry:
            lines.append(f"  {name} {entry['version'] or ''}: cannot start ({entry['error']})".replace("  :", ":"))
            continue
        devices = ", ".join(f"{d['name']} ({_gib(d.get('memory_bytes'))})" for d in entry["devices"]) or "CPU only"
        if "onednn" in entry:
            devices += "; oneDNN CPU kernels " + _onednn_state(entry)
        lines.append(f"  {name} {entry['version']}: {devices}")
    gl = report["opengl"]
    if "error" in gl:
        lines.append(f"OpenGL: unavailable ({gl['error']})")
    else:
        kind = "software rendering" if gl["software"] else "GPU"
        lines.append(f"OpenGL: {gl['renderer']} ({gl['vendor']}, {gl['version']}; {kind})")
    qt = report["qt"]
    lines.append(f"Qt: {qt['version']}, platform {qt['platform']}" if "error" not in qt else f"Qt: {qt['error']}")
    memory = report["memory"]
    lines.append(
        f"Memory: {_gib(memory['available_bytes'])} free of {_gib(memory['total_bytes'])}; "
        f"disk: {_gib(memory['disk_free_bytes'])} free at {memory['disk_path']}"
    )
    return "\n".join(lines)
