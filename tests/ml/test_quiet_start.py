"""TensorFlow's native start-up lines are filtered from stderr; everything else passes through."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from voxelstudio.ml.quiet_start import strip_noise

STARTUP = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1795450588.405147   24822 port.cc:153] oneDNN custom operations are on. You may see ...\n"
    b"I0000 00:00:1795450588.659608   24822 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...\n"
    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
    b"appropriate compiler flags.\n"
    b"E0000 00:00:1795450592.054799   24822 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
)


def test_strip_noise_removes_startup_lines_and_keeps_the_rest():
    other = b"denoise: 0it [00:00, ?it/s]"
    error = b"E0000 00:00:1.5   1 kernel.cc:9] a real failure\n"
    assert strip_noise(other + STARTUP + b"voxelstudio: error: bad file\n" + error) == (
        other + b"voxelstudio: error: bad file\n" + error
    )


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND") != "tensorflow" or importlib.util.find_spec("tensorflow") is None,
    reason="TensorFlow's start-up: checked in the TensorFlow run",
)
def test_tensorflow_startup_is_hidden_and_other_writes_pass_through():
    code = (
        "import os, sys\n"
        "from voxelstudio.ml import quiet_start\n"
        "with quiet_start.filtered_native_stderr():\n"
        "    import tensorflow as tf\n"
        "    tf.config.list_physical_devices()\n"
        "    os.write(2, b'kept line\\n')\n"
        "print('after', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, check=True)
    assert done.stderr.decode().splitlines() == ["kept line", "after"]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_tensorflow_starts_without_importing_jax_which_stays_importable():
    """TensorFlow's tf.lite imports JAX when installed (about 100 MB per process); on the TensorFlow backend it is not
    loaded, and a later ``import jax`` still works."""
    code = (
        "import sys\n"
        "from voxelstudio.ml import backend\n"
        "print(backend.name(), 'jax' in sys.modules)\n"
        "import jax\n"
        "print(jax.numpy.add(1, 2))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, check=True, env=env)
    assert done.stdout.decode().split() == ["tensorflow", "False", "3"]
