"""Which hardware trains and predicts: the active backend's GPUs, mixed precision and a short label.

Backend-specific calls live in :mod:`voxelstudio.ml.backend`; this module only decides.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass

import keras

from voxelstudio.ml import backend
from voxelstudio.ml.backend import distribution_scope, strategy_kind

__all__ = [
    "DeviceInfo",
    "configure_devices",
    "cpu_cores",
    "describe_device",
    "distribution_scope",
    "strategy_kind",
    "training_scope",
]


@dataclass(frozen=True)
class DeviceInfo:
    """The compute devices the backend sees: ``kind`` is "GPU" when any GPU is visible, else "CPU"."""

    kind: str
    names: tuple[str, ...]
    count: int
    mixed_precision: bool = False
    backend: str = "tensorflow"
    memory_bytes: tuple[int | None, ...] = ()
    policy: str | None = None


def configure_devices(*, mixed_precision: bool = False) -> DeviceInfo:
    """List the backend's GPUs (on TensorFlow: with memory growth; call before other TF work) and, on GPUs only,
    set the mixed-precision policy if asked: bf16 where the card computes in it, float16 on older cards.

    With mixed precision the denoisers keep their output layers in float32.
    """
    gpus = backend.accelerators()
    if not gpus:
        return DeviceInfo("CPU", (platform.processor() or platform.machine() or "CPU",), 1, backend=backend.name())
    policy = backend.mixed_precision_policy(gpus) if mixed_precision else None
    if policy is not None:
        keras.mixed_precision.set_global_policy(policy)
    return DeviceInfo(
        "GPU",
        tuple(g.name for g in gpus),
        len(gpus),
        policy is not None,
        backend.name(),
        tuple(g.memory_bytes for g in gpus),
        policy,
    )


@contextlib.contextmanager
def training_scope(*, mixed_precision: bool = False) -> Iterator[DeviceInfo]:
    """Build, compile and fit inside this: the devices configured (mixed precision on GPUs when asked) and the
    backend's distribution scope entered; the float32 policy is restored on the way out."""
    info = configure_devices(mixed_precision=mixed_precision)
    try:
        with distribution_scope(info.count if info.kind == "GPU" else 0):
            yield info
    finally:
        if info.policy is not None:
            keras.mixed_precision.set_global_policy("float32")


def cpu_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def describe_device(info: DeviceInfo | None = None) -> str:
    """Short label for a status bar: "JAX, GPU: NVIDIA H200", "TensorFlow, 2 GPUs: ...", "JAX, CPU (2 cores)"."""
    info = info or configure_devices()
    prefix = backend.LABELS.get(info.backend, info.backend)
    if info.kind == "CPU":
        cores = cpu_cores()
        return f"{prefix}, CPU ({cores} core{'' if cores == 1 else 's'})"
    label = "GPU" if info.count == 1 else f"{info.count} GPUs"
    precision = f" ({info.policy})" if info.policy else (" (mixed precision)" if info.mixed_precision else "")
    return f"{prefix}, {label}: {info.names[0]}{precision}"
