"""The backend module and device choice, on whichever backend ``KERAS_BACKEND`` names (CI runs TF and JAX)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from voxelstudio.ml import backend, device
from voxelstudio.ml.backend import Accelerator, mixed_precision_policy, strategy_kind
from voxelstudio.ml.device import DeviceInfo, configure_devices, describe_device, distribution_scope

GPUS = backend.accelerators()
ON_TENSORFLOW = backend.name() == "tensorflow"


def _cluster(workers: int, chief: bool = False) -> str:
    cluster = {"worker": [f"host{i}:2222" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["boss:2222"]
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})


def test_the_backend_is_the_one_keras_runs_on() -> None:
    assert backend.name() == keras.backend.backend()
    versions = backend.versions()
    assert versions["keras"] == keras.__version__ and backend.name() in versions


def test_configure_devices_reports_what_the_backend_sees() -> None:
    info = configure_devices()
    assert info.backend == backend.name()
    assert info.kind == ("GPU" if GPUS else "CPU")
    assert info.count == (len(GPUS) if GPUS else 1) == len(info.names)
    assert info.mixed_precision is False


@pytest.mark.skipif(bool(GPUS), reason="CPU-only behaviour")
def test_cpu_ignores_mixed_precision() -> None:
    info = configure_devices(mixed_precision=True)
    assert info.kind == "CPU" and not info.mixed_precision
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.skipif(not GPUS, reason="needs a GPU")
def test_gpu_mixed_precision_policy() -> None:
    try:
        info = configure_devices(mixed_precision=True)
        assert info.kind == "GPU" and info.mixed_precision
        assert keras.mixed_precision.global_policy().name == mixed_precision_policy(GPUS)
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    ("capabilities", "policy"),
    [
        ([], None),
        ([(9, 0)], "mixed_bfloat16"),
        ([(8, 0), (8, 6)], "mixed_bfloat16"),
        ([(7, 5)], "mixed_float16"),
        ([(9, 0), (7, 0)], "mixed_float16"),
        ([None], "mixed_bfloat16"),
    ],
)
def test_mixed_precision_policy_follows_the_cards(capabilities, policy) -> None:
    assert mixed_precision_policy([Accelerator("card", None, c) for c in capabilities]) == policy


@pytest.mark.parametrize(
    ("tf_config", "gpus", "kind"),
    [
        (None, 0, "default"),
        (None, 1, "default"),
        (None, 2, "mirrored"),
        ("", 4, "mirrored"),
        (_cluster(1), 0, "default"),
        (_cluster(1), 2, "mirrored"),
        (_cluster(2), 0, "multi_worker"),
        (_cluster(1, chief=True), 1, "multi_worker"),
        (json.dumps({"task": {"type": "worker"}}), 0, "default"),
    ],
)
def test_strategy_kind(tf_config: str | None, gpus: int, kind: str) -> None:
    assert strategy_kind(tf_config, gpus) == kind


def test_strategy_kind_rejects_broken_tf_config() -> None:
    with pytest.raises(ValueError, match="TF_CONFIG"):
        strategy_kind("{not json", 0)


def test_one_device_trains_with_one_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with distribution_scope(0) as replicas:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    assert replicas == 1
    assert model.predict(np.ones((2, 3), np.float32), verbose=0).shape == (2, 1)


@pytest.mark.skipif(not ON_TENSORFLOW, reason="tf.distribute strategies are TensorFlow's")
def test_tensorflow_strategies_are_real(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    assert backend.tensorflow_strategy("default") is tf.distribute.get_strategy()
    mirrored = backend.tensorflow_strategy("mirrored")  # over the GPUs this machine has, or its CPU
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == max(len(tf.config.list_physical_devices("GPU")), 1)
    with mirrored.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    assert all(isinstance(weight.value, tf.distribute.DistributedValues) for weight in model.weights)
    before = model.get_weights()[0].copy()
    model.fit(np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32), batch_size=4, epochs=1, verbose=0)
    assert not np.allclose(model.get_weights()[0], before)  # the replicas' update reached the variables


DATA_PARALLEL_SCRIPT = """
import numpy as np, keras
from voxelstudio.ml.backend import distribution_scope
with distribution_scope(2) as replicas:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.ones((8, 4), np.float32), np.ones((8, 1), np.float32), batch_size=4, epochs=2, verbose=0)
    distribution = keras.distribution.distribution()
    devices = len(model.layers[0].kernel.value.sharding.device_set)
print(replicas, type(distribution).__name__, devices, len(history.history["loss"]))
"""


def test_jax_trains_data_parallel_over_two_devices() -> None:
    """Two host devices stand in for two GPUs: the batch is split over both by keras.distribution.DataParallel."""
    pytest.importorskip("jax", reason="JAX is not installed")
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"  # on a machine with one GPU, jax.devices() would list that GPU alone
    result = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL_SCRIPT], env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-4:] == ["2", "DataParallel", "2", "2"]


def test_describe_device() -> None:
    gpu = DeviceInfo("GPU", ("NVIDIA H200",), 1, backend="jax")
    assert describe_device(gpu) == "JAX, GPU: NVIDIA H200"
    two = DeviceInfo("GPU", ("NVIDIA H100",) * 2, 2, True, "tensorflow", policy="mixed_bfloat16")
    assert describe_device(two) == "TensorFlow, 2 GPUs: NVIDIA H100 (mixed_bfloat16)"
    cores = device.cpu_cores()
    assert describe_device(DeviceInfo("CPU", ("x86_64",), 1, backend="torch")) == (
        f"PyTorch, CPU ({cores} core{'' if cores == 1 else 's'})"
    )
    label = describe_device()
    assert re.fullmatch(rf"{backend.label()}, " + (r"GPU: .+" if GPUS else r"CPU \(\d+ cores?\)"), label)


def test_value_and_gradient_of_a_scalar_function() -> None:
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    value, gradient = backend.value_and_gradient(lambda t: keras.ops.sum(t * t), x)
    assert float(value) == pytest.approx(14.0)
    np.testing.assert_allclose(gradient, 2 * x)


def test_jit_compile_is_on_for_jax_only() -> None:
    assert backend.jit_compile() == ("auto" if backend.name() == "jax" else False)


class _Batches(keras.utils.PyDataset):
    def __init__(self, workers: int) -> None:
        super().__init__(workers=workers, use_multiprocessing=False)

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return np.full((2, 4), index, np.float32), np.full((2, 1), index, np.float32)


@pytest.mark.skipif(not ON_TENSORFLOW, reason="tf.data is TensorFlow's")
@pytest.mark.parametrize("workers", [0, 1, 2])
def test_quiet_tf_data_builds_keras_pipelines_without_autotuning(workers: int, keras_own_tf_pipeline: type) -> None:
    backend.quiet_tf_data()
    wrapped = keras_own_tf_pipeline.get_tf_dataset
    backend.quiet_tf_data()
    assert keras_own_tf_pipeline.get_tf_dataset is wrapped  # idempotent: wrapped once
    adapter = keras_own_tf_pipeline(_Batches(workers))
    dataset = adapter.get_tf_dataset()
    # Keras leaves autotuning on (None: the default) below 2 workers, off with its worker queue
    assert dataset.options().autotune.enabled is False
    adapter.on_epoch_begin()
    try:
        assert [float(x[0, 0]) for x, _ in dataset] == [0.0, 1.0, 2.0]  # same batches, same order
    finally:
        adapter.on_epoch_end()
