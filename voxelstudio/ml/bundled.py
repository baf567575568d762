"""The bundled denoiser as a starting point for training, described without importing Keras.

A ``.keras`` file is a zip; VoxelStudio's ``voxelstudio.json`` member (see :mod:`voxelstudio.ml.persistence`) holds
the training config, so the window can tell whether the bundled model's weights fit a configuration (and so whether
training can start from them) without starting TensorFlow.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from voxelstudio.core.resources import BUNDLED_DENOISER, resource_path
from voxelstudio.ml.config import DenoiserConfig, TrainConfig
from voxelstudio.ml.model_file import METADATA_MEMBER

WEIGHT_FIELDS = (
    "arch",
    "filters",
    "kernel",
    "n_layers",
    "depth",
    "norm",
    "pool_z",
    "output_activation",
    "spacing_input",
)
"""The DenoiserConfig fields two models must share for one to start from the other's weights (``depth`` and
``pool_z`` only matter to the U-Nets, ``n_layers`` only to the plain CNN; comparing all is the safe side)."""


def bundled_denoiser_path() -> Path:
    """The bundled denoiser's file; FileNotFoundError naming it when the installation lacks it."""
    return resource_path(*BUNDLED_DENOISER)


def read_train_config(path: str | Path) -> TrainConfig:
    """The training config stored in a VoxelStudio model file; ValueError naming the file when it has none or the
    file is not a readable model."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read(METADATA_MEMBER))
        return TrainConfig.from_dict(metadata["train_config"])
    except (OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable model file ({exc})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: no VoxelStudio training config in the model file ({exc})") from None


def architecture_mismatch(start: DenoiserConfig, chosen: DenoiserConfig) -> str | None:
    """None when a model of ``chosen`` can start from ``start``'s weights, else what differs, e.g.
    ``"filters 8 vs 32"``."""
    differences = []
    for name in WEIGHT_FIELDS:
        have, want = getattr(start, name), getattr(chosen, name)
        if have != want:
            differences.append(f"{name} {_text(have)} vs {_text(want)}")
    return "; ".join(differences) or None


def describe_architecture(model: DenoiserConfig) -> str:
    """``"unet, 8 filters, kernel 3x3x6, depth 3"``: what a user recognises in the Train tab."""
    text = f"{model.arch}, {model.filters} filters, kernel {_text(model.kernel)}"
    text += f", {model.n_layers} layers" if model.arch == "simple" else f", depth {model.depth}"
    return text + (", voxel-size input" if model.spacing_input else "")


def _text(value: object) -> str:
    return "x".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
