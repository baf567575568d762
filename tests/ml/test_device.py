from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from voxelstudio.ml import device
from voxelstudio.ml.device import DeviceInfo, configure_devices, describe_device, distribution_strategy, strategy_kind

HAS_GPU = bool(tf.config.list_physical_devices("GPU"))


def _cluster(workers: int, chief: bool = False) -> str:
    cluster = {"worker": [f"host{i}:2222" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["boss:2222"]
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})


def test_configure_devices_reports_what_tensorflow_sees() -> None:
    info = configure_devices()
    gpus = tf.config.list_physical_devices("GPU")
    assert info.kind == ("GPU" if gpus else "CPU")
    assert info.count == (len(gpus) if gpus else 1) == len(info.names)
    assert info.mixed_precision is False


@pytest.mark.skipif(HAS_GPU, reason="CPU-only behaviour")
def test_cpu_ignores_mixed_precision() -> None:
    info = configure_devices(mixed_precision=True)
    assert info.kind == "CPU" and not info.mixed_precision
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU")
def test_gpu_mixed_precision_policy() -> None:
    try:
        info = configure_devices(mixed_precision=True)
        assert info.kind == "GPU" and info.mixed_precision
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


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


def test_default_strategy_on_one_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribution_strategy(DeviceInfo("CPU", ("cpu",), 1))
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1


def test_two_workers_in_tf_config_choose_multi_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    created = []
    monkeypatch.setenv("TF_CONFIG", _cluster(2))
    monkeypatch.setattr(device.tf.distribute, "MultiWorkerMirroredStrategy", lambda: created.append(1) or "mwms")
    assert distribution_strategy(DeviceInfo("CPU", ("cpu",), 1)) == "mwms"
    assert created == [1]


def test_several_gpus_choose_mirrored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real MirroredStrategy (over the GPUs this machine has, or its CPU): a model built in its scope gets mirrored
    variables and trains; one GPU gets the default strategy."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribution_strategy(DeviceInfo("GPU", ("a", "b"), 2))
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == max(len(tf.config.list_physical_devices("GPU")), 1)
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    assert all(isinstance(weight.value, tf.distribute.DistributedValues) for weight in model.weights)
    before = model.get_weights()[0].copy()
    model.fit(np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32), batch_size=4, epochs=1, verbose=0)
    assert not np.allclose(model.get_weights()[0], before)  # the replicas' update reached the variables
    assert not isinstance(distribution_strategy(DeviceInfo("GPU", ("a",), 1)), tf.distribute.MirroredStrategy)


def test_describe_device() -> None:
    assert describe_device(DeviceInfo("GPU", ("NVIDIA H100",), 1)) == "GPU: NVIDIA H100"
    assert describe_device(DeviceInfo("GPU", ("NVIDIA H100",) * 2, 2, True)) == "2 GPUs: NVIDIA H100 (mixed precision)"
    assert describe_device(DeviceInfo("CPU", ("x86_64",), 1)) == f"CPU ({device.cpu_cores()} cores)"
    label = describe_device()
    assert re.fullmatch(r"GPU: .+" if HAS_GPU else r"CPU \(\d+ cores\)", label)
