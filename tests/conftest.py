"""The whole suite: refuse to run the GUI tests and TensorFlow tests in one process.

TensorFlow exports its bundled LLVM's symbols process-wide; Mesa's llvmpipe (the software OpenGL that VTK uses under
Xvfb) then calls into TensorFlow's copy and the process crashes, often long after the test that caused it. A mixed
run therefore stops before any test runs, with one line saying how to run the two halves.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

XLA_TEST_FLAG = "--xla_backend_optimization_level=0"
"""On a machine without a GPU, the suite's JAX code (the JAX run, and JAX children of the TensorFlow run) compiles
without XLA's backend optimisation passes: the tests' tiny models run briefly, so compiling is most of their time,
and the JAX run of tests/ml took 5.6 instead of 13.6 minutes on this 2-core machine. Numerics are XLA's either way.
Set before any test imports JAX; a GPU check (benchmarks/gpu_check.sh) runs the suite as users' code compiles."""
if shutil.which("nvidia-smi") is None and XLA_TEST_FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_TEST_FLAG}".strip()
GUI_FOLDERS = ("gui", "render")
TENSORFLOW_FOLDERS = ("ml", "tasks", "jobs", "cli", "reliability", "benchmarks")
"""Test folders whose tests load TensorFlow (in this process, or in children that this one does not care about,
but they are slow and belong to the second run anyway)."""

MIXED_RUN = (
    "refusing to run GUI tests (tests/gui, tests/render) and TensorFlow tests in one process: TensorFlow's LLVM "
    "crashes Mesa's llvmpipe; run `python -m pytest tests/gui tests/render` and "
    "`python -m pytest --ignore=tests/gui --ignore=tests/render` separately"
)


def _folder(item: pytest.Item) -> str | None:
    try:
        return Path(item.path).resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return None


def mixes_gui_and_tensorflow(folders: set[str | None], tensorflow_loaded: bool) -> bool:
    """Whether a run of tests from ``folders`` would put TensorFlow and the GUI tests in one process."""
    gui = any(folder in GUI_FOLDERS for folder in folders)
    return gui and (tensorflow_loaded or any(folder in TENSORFLOW_FOLDERS for folder in folders))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folders = {_folder(item) for item in items}
    if mixes_gui_and_tensorflow(folders, "tensorflow" in sys.modules):
        raise pytest.UsageError(MIXED_RUN)


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports Keras: voxelstudio.ml turns on TensorFlow's oneDNN CPU kernels, so the suite
    runs what the app runs whichever module starts TensorFlow first (importing it starts no framework)."""
    import voxelstudio.ml  # noqa: F401
