"""``python -m voxelstudio.ml.probe``: start the backend ``KERAS_BACKEND`` names and print what it sees as JSON.

Run by ``voxelstudio doctor`` in a child process per backend, so a backend that crashes or hangs while starting
(a broken CUDA install, say) costs only that child.
"""

from __future__ import annotations

import json
import os
import sys

from voxelstudio.core.backends import ONEDNN_VARIABLE
from voxelstudio.ml.quiet_start import filtered_native_stderr


def probe() -> dict[str, object]:
    """{"version", "keras", "devices": [{"name", "memory_bytes"}]} of the active backend, and under TensorFlow
    "onednn": whether its oneDNN CPU kernels are on, and "onednn_requested": whether the environment asked for
    them (asked for and still off: this TensorFlow build has none)."""
    with filtered_native_stderr():
        from voxelstudio.ml import backend

        gpus = backend.accelerators()
        onednn = backend.tensorflow_onednn()
    found: dict[str, object] = {
        "version": backend.versions()[backend.name()],
        "keras": backend.versions()["keras"],
        "devices": [{"name": g.name, "memory_bytes": g.memory_bytes} for g in gpus],
    }
    if onednn is not None:
        found["onednn"] = onednn
        found["onednn_requested"] = os.environ.get(ONEDNN_VARIABLE) == "1"
    return found


if __name__ == "__main__":
    json.dump(probe(), sys.stdout)
