"""Helpers for the crash tests: child processes that import this checkout, polling with a deadline, tiny data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume

REPO = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """The environment of a child ``python``: this checkout importable, TensorFlow quiet and on two threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", TF_NUM_INTRAOP_THREADS="2", TF_NUM_INTEROP_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def start(args: Sequence[str], log: Path) -> subprocess.Popen:
    """``python *args`` in the repository root with stdout and stderr going to ``log``."""
    with open(log, "wb") as out:
        command = [sys.executable, *args]
        return subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=out, stderr=subprocess.STDOUT)


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Poll ``condition`` until it holds; AssertionError with the child's output if it ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"child exited ({process.returncode}) first:\n{_tail(log)}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out after {timeout:g} s:\n{_tail(log)}")
        time.sleep(0.02)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def kill_hard(process: subprocess.Popen) -> None:
    """SIGKILL (no handlers, no cleanup) and reap; the child must still have been running."""
    assert process.poll() is None, "the child finished before it could be killed"
    process.kill()
    assert process.wait(timeout=30) == -9


def write_bead_pairs(root: Path, stems: Sequence[str], shape: tuple[int, int, int] = (24, 24, 12)) -> tuple[Path, Path]:
    """Folders ``raw`` and ``target`` of simulated bead pairs (target beads, blurred and noisy raw)."""
    raw_dir, target_dir = root / "raw", root / "target"
    raw_dir.mkdir(parents=True)
    target_dir.mkdir(parents=True)
    for seed, stem in enumerate(stems):
        rng = np.random.default_rng(seed)
        target = ndimage.gaussian_filter((rng.random(shape) < 5e-3).astype(np.float32), 1.0)
        target /= max(float(target.max()), 1e-6)
        raw = ndimage.gaussian_filter(target, (1.5, 1.5, 3.0)) + 0.1 * rng.normal(size=shape)
        save_volume(Volume(raw), raw_dir / f"{stem}.mat")
        save_volume(Volume(target), target_dir / f"{stem}.mat")
    return raw_dir, target_dir


def visible_files(folder: Path) -> list[str]:
    """What a file dialog or ``ls`` shows: names not starting with a dot."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
