"""Which hardware trains and predicts: GPU memory growth, distribution strategy, mixed precision, a short label."""

from __future__ import annotations

import contextlib
import json
import os
import platform
from dataclasses import dataclass

import keras
import tensorflow as tf


@dataclass(frozen=True)
class DeviceInfo:
    """The compute devices TensorFlow sees: ``kind`` is "GPU" when any GPU is visible, else "CPU"."""

    kind: str
    names: tuple[str, ...]
    count: int
    mixed_precision: bool = False


def configure_devices(*, mixed_precision: bool = False) -> DeviceInfo:
    """Enable memory growth on every GPU (call before any TF op) and, on GPUs only, ``mixed_float16`` if asked.

    With mixed precision the denoisers keep their output layers in float32.
    """
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # the runtime has started: its memory setting is fixed
            tf.config.experimental.set_memory_growth(gpu, True)
    if not gpus:
        return DeviceInfo("CPU", (platform.processor() or platform.machine() or "CPU",), 1)
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    names = tuple(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus)
    return DeviceInfo("GPU", names, len(gpus), mixed_precision)


def strategy_kind(tf_config: str | None, gpu_count: int) -> str:
    """ "multi_worker" when ``tf_config`` (TF_CONFIG's JSON) names several workers, "mirrored" for several GPUs,
    else "default"."""
    if tf_config:
        try:
            config = json.loads(tf_config)
        except json.JSONDecodeError as exc:
            raise ValueError(f"TF_CONFIG is not valid JSON: {exc}") from exc
        cluster = config.get("cluster", {}) if isinstance(config, dict) else {}
        if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
            return "multi_worker"
    return "mirrored" if gpu_count > 1 else "default"


def distribution_strategy(info: DeviceInfo | None = None) -> tf.distribute.Strategy:
    """The strategy to build and fit models under (create it at start-up, before other TF work)."""
    info = info or configure_devices()
    kind = strategy_kind(os.environ.get("TF_CONFIG"), info.count if info.kind == "GPU" else 0)
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def cpu_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def describe_device(info: DeviceInfo | None = None) -> str:
    """Short label for a status bar: "GPU: NVIDIA H100 80GB HBM3", "2 GPUs: ...", or "CPU (2 cores)"."""
    info = info or configure_devices()
    if info.kind == "CPU":
        return f"CPU ({cpu_cores()} cores)"
    label = "GPU" if info.count == 1 else f"{info.count} GPUs"
    return f"{label}: {info.names[0]}" + (" (mixed precision)" if info.mixed_precision else "")
