"""tests/conftest.py refuses, in one line, a pytest run that would put TensorFlow and the GUI tests in one process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _collect(*paths: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_a_run_mixing_gui_and_tensorflow_tests_is_refused_with_one_line():
    mixed = _collect("tests/gui/test_gui_canvas.py", "tests/jobs/test_events.py")
    assert mixed.returncode == 4  # pytest's usage error: nothing ran
    (line,) = [text for text in mixed.stderr.splitlines() if "refusing" in text]
    assert "TensorFlow's LLVM crashes Mesa's llvmpipe" in line and "--ignore=tests/gui" in line


def test_each_half_alone_is_accepted():
    assert _collect("tests/gui/test_gui_canvas.py").returncode == 0
    assert _collect("tests/jobs/test_events.py", "tests/core/test_volume.py").returncode == 0


def test_the_rule():
    spec = importlib.util.spec_from_file_location("suite_conftest", REPO / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mixes_gui_and_tensorflow = module.mixes_gui_and_tensorflow
    assert mixes_gui_and_tensorflow({"gui", "ml"}, False)
    assert mixes_gui_and_tensorflow({"render", "io"}, True)  # something imported TensorFlow while collecting
    assert not mixes_gui_and_tensorflow({"gui", "render", "io"}, False)
    assert not mixes_gui_and_tensorflow({"ml", "tasks", "cli"}, True)
