"""tests/ml: quiet, deterministic TensorFlow that shares a small machine politely.

The environment is set before anything imports TensorFlow (TF reads these at start-up), so tests that never touch
TF (config, tiling) do not pay for importing it here.
"""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


@pytest.fixture(autouse=True)
def _seed_keras() -> None:
    """Seed Python, numpy and Keras before every test that has Keras loaded."""
    if "keras" in sys.modules:
        import keras

        keras.utils.set_random_seed(0)


@pytest.fixture
def keras_own_tf_pipeline(monkeypatch: pytest.MonkeyPatch) -> type:
    """Keras' ``PyDatasetAdapter`` with its own ``get_tf_dataset`` (unwrapped from ``backend.quiet_tf_data``, which
    an earlier fit may have applied); pytest puts back what was there, so no test depends on another having run."""
    import inspect

    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    monkeypatch.setattr(PyDatasetAdapter, "get_tf_dataset", inspect.unwrap(PyDatasetAdapter.__dict__["get_tf_dataset"]))
    return PyDatasetAdapter
