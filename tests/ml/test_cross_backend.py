"""Model files any backend can read: every (save backend, load backend) pair among the installed ones predicts the
same (within 1e-3 of the data range; denoisers with and without the voxel-size input, classifiers) and restores a
checkpoint's optimizer state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voxelstudio.core.backends import installed_backends

WORKER = Path(__file__).with_name("cross_backend_worker.py")
BACKENDS = installed_backends()
RUNS_HERE = bool(BACKENDS) and os.environ.get("KERAS_BACKEND", "tensorflow") == BACKENDS[0]
"""The matrix runs its own child processes for every backend: once per test suite, in the run on the first
installed backend (TensorFlow in CI, JAX on a machine without it), not again in the other backends' runs."""


def _run(backend: str, *args: str) -> str:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, str(WORKER), *args], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{backend} {args[0]}: {result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, object]]]:
    """load backend -> save backend -> results."""
    folder = tmp_path_factory.mktemp("cross_backend")
    for backend in BACKENDS:
        _run(backend, "save", str(folder))
    return {backend: json.loads(_run(backend, "load", str(folder)).splitlines()[-1]) for backend in BACKENDS}


@pytest.mark.timeout(900)
@pytest.mark.skipif(len(BACKENDS) < 2, reason=f"needs two Keras backends; installed: {', '.join(BACKENDS)}")
@pytest.mark.skipif(not RUNS_HERE, reason="the matrix runs once, in the run on the first installed backend")
def test_every_backend_reads_every_backends_models(matrix) -> None:
    for loader, by_saver in matrix.items():
        assert sorted(by_saver) == sorted(BACKENDS)
        for saver, result in by_saver.items():
            where = f"saved under {saver}, loaded under {loader}"
            assert result["denoiser"] <= 1e-3, where
            assert result["conditioned"] <= 1e-3, where  # a denoiser that takes the voxel size (FiLM)
            assert result["classifier"] <= 1e-3, where
            assert result["optimizer_restored"] is True, where
            assert result["optimizer_step"] == 1, where
