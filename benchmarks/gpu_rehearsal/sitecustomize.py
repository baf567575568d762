"""Rehearse the GPU check on a CPU machine: the packages the GPU machine lacks cannot be found or imported.

Put this folder first on ``PYTHONPATH`` (benchmarks/README.md, "GPU"); Python imports ``sitecustomize`` at start.
``importlib.util.find_spec`` then answers None for them, as it does there (so ``installed_backends()`` leaves
TensorFlow out), and importing one raises ModuleNotFoundError, so a module that needs one where the GPU check goes
fails here first, not on the device's clock.
"""

import importlib.util
import sys

MISSING_THERE = {
    "tensorflow", "tensorboard", "keras_tuner", "dask", "distributed", "zarr", "optuna",
    "PySide6", "pyvista", "pyvistaqt", "vtk", "vtkmodules",
}  # fmt: skip
"""Top-level packages VoxelStudio can use that the GPU machine's image does not hold (device/KINDS.md)."""

_find_spec = importlib.util.find_spec


def _missing(name: str) -> bool:
    return name.partition(".")[0] in MISSING_THERE


def find_spec(name: str, package: str | None = None) -> object:
    return None if _missing(name) else _find_spec(name, package)


class _Missing:
    """First on ``sys.meta_path``: imports of a missing package fail as if it were not installed."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if _missing(name):
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU machine)", name=name)
        return None


importlib.util.find_spec = find_spec
sys.meta_path.insert(0, _Missing())
