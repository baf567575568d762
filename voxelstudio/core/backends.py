"""Which Keras backend a process uses: ``KERAS_BACKEND``, checked against what is installed before Keras starts.

This module never imports Keras or a framework (``importlib.util.find_spec`` only), so the CLI and the window can
validate the choice and list the installed backends cheaply.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

from voxelstudio.core.errors import VoxelStudioError

BACKENDS = ("tensorflow", "jax", "torch")
"""Keras 3's training backends, in the order the window offers them."""
DEFAULT = "tensorflow"
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
"""How the window and status lines name each backend."""
EXTRAS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
"""What to pip install for each backend (the extras of the same names install the same)."""
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
"""TensorFlow's switch for its oneDNN CPU kernels, which :mod:`voxelstudio.ml` turns on unless it is set."""


class BackendError(VoxelStudioError):
    """``KERAS_BACKEND`` names no Keras backend, or one that is not installed."""


def installed_backends() -> list[str]:
    """The backends whose framework can be imported here (without importing it)."""
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def requested_backend(environ: Mapping[str, str] | None = None) -> str:
    """``KERAS_BACKEND`` (lower-cased), or the default when unset or empty."""
    environ = os.environ if environ is None else environ
    return (environ.get("KERAS_BACKEND") or DEFAULT).strip().lower()


def check_backend(name: str) -> str:
    """``name`` if it is an installed Keras backend, else a one-line :class:`BackendError` naming the installed ones."""
    installed = installed_backends()
    listed = ", ".join(installed) or "none"
    if name not in BACKENDS:
        raise BackendError(f"KERAS_BACKEND={name!r} is not a Keras backend; installed backends: {listed}")
    if name not in installed:
        raise BackendError(
            f'KERAS_BACKEND={name!r} but {name} is not installed (pip install "{EXTRAS[name]}"); '
            f"installed backends: {listed}"
        )
    return name


def select_backend(name: str | None = None) -> str:
    """Check ``name`` (default: ``KERAS_BACKEND``) and export it for Keras, which reads it on import."""
    chosen = check_backend(requested_backend() if name is None else name.strip().lower())
    os.environ["KERAS_BACKEND"] = chosen
    return chosen
