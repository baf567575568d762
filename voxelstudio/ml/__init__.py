"""Deep learning for VoxelStudio: the only package that imports TensorFlow/Keras.

Importing ``voxelstudio.ml`` is cheap: the names below are loaded on first use, so TensorFlow starts only when a
model is built, trained or loaded. ``voxelstudio.ml.config`` never imports TensorFlow.

- config: ``DenoiserConfig``, ``LossConfig``, ``TrainConfig`` (JSON round-trip, ``validate()``)
- blocks: functional building blocks (conv, residual, separable, inception, dense, down/up)
- denoisers: ``build_denoiser(cfg)``, ``receptive_field(cfg)``, ``required_multiple(cfg)``, ``pad_to_multiple``
- losses: ``get_loss(cfg)`` (mse, mae, imbalanced, ssim, mae+ssim)
- persistence: ``save_model`` / ``load_model`` of one ``.keras`` file with metadata -> ``LoadedModel``
- backend: what differs between TensorFlow, JAX and PyTorch (devices, memory, OOM errors, gradients, distribution)
- device: ``configure_devices()``, ``training_scope()``, ``distribution_scope()``, ``describe_device()``
- classifier_config / classifiers: ``ClassifierConfig``, ``ClassifierTrainConfig``, ``build_classifier(cfg)``,
  ``save_classifier`` / ``load_classifier`` -> ``LoadedClassifier``, ``predict_probabilities`` (rotation voting)

Importing it also turns on TensorFlow's oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS=1``) unless the environment says
otherwise: TensorFlow enables them by default only on CPUs with neural-network instructions (AVX-512 VNNI or BF16, AMX),
and without them its 3-D convolutions fall back to kernels built for plain AVX. On an AVX2 CPU (most laptops; the
development machine without AVX-512) one training step of the CPU-sized VRN took 11.8 s instead of 2.1 s, of VoxNet 0.77
s instead of 0.18 s (benchmarks/README.md, "CPU kernels"). It must happen before TensorFlow is first imported, hence
here. TensorFlow then logs "E0000 ... oneDNN supports DT_INT32 only on platforms with AVX-512" during every training
(on AVX2 CPUs, and on AMD EPYCs with AVX-512 too), besides grappler's harmless "remapper failed" errors, so its
native log is quieted as well (``TF_CPP_MIN_LOG_LEVEL=3`` unless set; exceptions still say what went wrong).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from voxelstudio.core.backends import ONEDNN_VARIABLE

if ONEDNN_VARIABLE not in os.environ:
    os.environ[ONEDNN_VARIABLE] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_LAZY = {
    "ARCHITECTURES": "config",
    "LOSSES": "config",
    "NORMALIZATIONS": "config",
    "DenoiserConfig": "config",
    "LossConfig": "config",
    "TrainConfig": "config",
    "build_denoiser": "denoisers",
    "receptive_field": "denoisers",
    "required_multiple": "denoisers",
    "pad_to_multiple": "denoisers",
    "get_loss": "losses",
    "LoadedModel": "persistence",
    "save_model": "persistence",
    "load_model": "persistence",
    "DeviceInfo": "device",
    "configure_devices": "device",
    "distribution_scope": "device",
    "training_scope": "device",
    "describe_device": "device",
    "CLASSIFIER_ARCHITECTURES": "classifier_config",
    "ClassifierConfig": "classifier_config",
    "ClassifierTrainConfig": "classifier_config",
    "build_classifier": "classifiers",
    "LoadedClassifier": "classifiers",
    "save_classifier": "classifiers",
    "load_classifier": "classifiers",
    "predict_probabilities": "classifiers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
