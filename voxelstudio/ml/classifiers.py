"""3-D voxel classifiers: ``build_classifier(cfg)`` (VoxNet, Voxception-ResNet), saving/loading them with their
class names, and prediction with rotation voting.

Models take occupancy grids (N, H, W, Z, 1) in [0, 1], rescale them themselves and output class probabilities.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from voxelstudio.core.errors import ModelError
from voxelstudio.ml import classifier_blocks
from voxelstudio.ml.blocks import conv_block, normalization
from voxelstudio.ml.classifier_config import ClassifierConfig, ClassifierTrainConfig
from voxelstudio.ml.classifier_inference import predict_probabilities as predict_probabilities  # re-exported
from voxelstudio.ml.model_file import CLASSIFIER_FORMAT, DENOISER_FORMAT, FORMAT_VERSION
from voxelstudio.ml.persistence import (
    file_sha256,
    keras_path,
    load_network,
    metadata_header,
    read_members,
    write_keras_with_metadata,
)
from voxelstudio.ml.voxel_pose import POSE_VERSION, POSE_VERSIONS

VRN_CHANNELS = (32, 64, 128, 256, 512)
"""Channels of the VRN stem and after each of its four downsampling blocks (at width 1)."""
BN_MOMENTUM = 0.9
"""VRN's batch-norm moving-average momentum: Lasagne's rate alpha = 0.1 in Brock's code (Keras' default is 0.99)."""


def scaled_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to a multiple of 4 (at least 4), so VRN branches split evenly."""
    return max(4, round(channels * width / 4.0) * 4)


def build_voxnet(cfg: ClassifierConfig) -> keras.Model:
    """VoxNet: conv 5^3/2 -> conv 3^3 -> max-pool 2 -> Dense 128 -> Dense n_classes (leaky ReLU 0.1, dropout)."""
    filters, hidden, d = max(1, round(32 * cfg.width)), max(1, round(128 * cfg.width)), cfg.dropout
    inputs = keras.Input((*cfg.input_shape, 1), name="occupancy")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(inputs)  # {0, 1} -> {-1, 1}
    x = conv_block(x, filters, 5, "none", None, strides=2, padding="valid", name="conv1")
    x = keras.layers.LeakyReLU(negative_slope=0.1, name="conv1_lrelu")(x)
    x = keras.layers.Dropout(d * 2 / 3, name="conv1_drop")(x)
    x = conv_block(x, filters, 3, "none", None, padding="valid", name="conv2")
    x = keras.layers.LeakyReLU(negative_slope=0.1, name="conv2_lrelu")(x)
    x = keras.layers.MaxPooling3D(2, name="pool")(x)
    x = keras.layers.Dropout(d, name="pool_drop")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(hidden, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(min(d * 4 / 3, 0.9), name="fc1_drop")(x)
    outputs = keras.layers.Dense(cfg.n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="voxnet")


def build_vrn(cfg: ClassifierConfig) -> keras.Model:
    """Voxception-ResNet: stem, 4 x (VRN blocks + downsampling), final residual 3^3 conv, GAP, Dense 512 head."""
    channels = [scaled_channels(c, cfg.width) for c in VRN_CHANNELS]
    n_residual = 4 * cfg.blocks_per_stage + 1
    keeps = classifier_blocks.keep_probabilities(n_residual, cfg.min_keep_prob) if cfg.stochastic_depth else None
    keep = iter(keeps or [1.0] * n_residual)
    head_norm = {"none": "none", "batch": "batch"}.get(cfg.norm, "layer")  # instance/group need spatial axes

    inputs = keras.Input((*cfg.input_shape, 1), name="occupancy")
    x = keras.layers.Rescaling(4.0, offset=-1.0, name="to_m1_3")(inputs)  # {0, 1} -> {-1, 3} as in Brock's code
    x = conv_block(x, channels[0], 3, "none", None, name="stem")
    for stage in range(4):
        for block in range(cfg.blocks_per_stage):
            x = classifier_blocks.vrn_block(
                x, keep_prob=next(keep), norm=cfg.norm, separable=cfg.separable, name=f"vrn{stage + 1}_{block + 1}"
            )
        x = classifier_blocks.vrn_downsample(x, channels[stage + 1], norm=cfg.norm, name=f"down{stage + 1}")
    branch = conv_block(x, channels[4], 3, cfg.norm, None, name="final")
    branch = classifier_blocks.StochasticDepth(next(keep), name="final_drop")(branch)
    x = keras.layers.Add(name="final_add")([x, branch])
    x = keras.layers.Activation("elu", name="final_elu")(x)
    x = keras.layers.GlobalAveragePooling3D(name="gap")(x)
    x = normalization(head_norm, name="gap_norm")(x)
    x = keras.layers.Dense(scaled_channels(512, cfg.width), activation="elu", name="fc1")(x)
    x = normalization(head_norm, name="fc1_norm")(x)
    x = keras.layers.Dropout(cfg.dropout, name="fc1_drop")(x)
    outputs = keras.layers.Dense(cfg.n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="vrn")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


def build_classifier(cfg: ClassifierConfig) -> keras.Model:
    """The classifier ``cfg`` describes (validated first)."""
    cfg.validate()
    return {"voxnet": build_voxnet, "vrn": build_vrn}[cfg.arch](cfg)


@dataclass(frozen=True)
class LoadedClassifier:
    """A loaded classifier with its class names, configs, metadata and file hash."""

    model: keras.Model
    classes: tuple[str, ...]
    config: ClassifierConfig | None
    train_config: ClassifierTrainConfig | None
    metadata: dict[str, Any]
    sha256: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.model.inputs[0].shape[1:4])  # type: ignore[return-value]

    @property
    def pose_version(self) -> int:
        """The pose version of its training grids when they were posed (``orientation="any"``); 1 for files from
        before the version was recorded and for models of upright grids, which are never posed."""
        return int(self.metadata.get("pose_version", 1))


def save_classifier(
    model: keras.Model,
    path: str | Path,
    *,
    classes: Sequence[str],
    train_config: ClassifierTrainConfig,
    extra: dict[str, Any] | None = None,
    include_optimizer: bool = False,
    pose_version: int = POSE_VERSION,
) -> Path:
    """Write ``model`` with its class names and training config to one ``.keras`` file, atomically.

    The optimizer state (twice the weights' size for Adam) is kept only with ``include_optimizer`` (checkpoints).
    ``pose_version``: the pose its training grids had, recorded for models of posed grids (``orientation="any"``).
    """
    path = keras_path(path)
    if len(classes) != model.outputs[0].shape[-1]:
        raise ValueError(f"{path}: {len(classes)} class names for a model with {model.outputs[0].shape[-1]} outputs")
    metadata = {
        **metadata_header(CLASSIFIER_FORMAT, FORMAT_VERSION),
        "classes": list(classes),
        "train_config": train_config.to_dict(),
        "extra": extra or {},
    }
    if train_config.model.orientation == "any":
        if pose_version not in POSE_VERSIONS:
            raise ValueError(f"{path}: pose version {pose_version} is not one of {POSE_VERSIONS}")
        metadata["pose_version"] = int(pose_version)
    text = json.dumps(metadata, indent=2, sort_keys=True)
    return write_keras_with_metadata(model, path, text, optimizer_state=include_optimizer)


def load_classifier(path: str | Path, *, trusted: bool = False) -> LoadedClassifier:
    """Load a classifier saved by :func:`save_classifier`; every problem is a one-line ``ModelError``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "is a folder, not a model file" if path.is_dir() else "model file not found")
    config, metadata = read_members(path)
    if metadata.get("format") != CLASSIFIER_FORMAT:
        kind = "a denoiser" if metadata.get("format") == DENOISER_FORMAT else "not a VoxelStudio classifier"
        raise ModelError(path, f"{kind}; train one with 'voxelstudio train-classifier'")
    model = load_network(path, config, metadata, trusted=trusted)
    names = metadata.get("classes", [])
    if not isinstance(names, list):
        raise ModelError(path, f"invalid VoxelStudio metadata: classes must be a list of names, got {names!r:.60}")
    classes = tuple(str(c) for c in names)
    _check_classifier_shapes(path, model, classes)
    try:
        train_config = ClassifierTrainConfig.from_dict(metadata["train_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(path, f"invalid VoxelStudio metadata: {exc}") from exc
    _check_pose_version(path, train_config.model, metadata)
    return LoadedClassifier(model, classes, train_config.model, train_config, metadata, file_sha256(path))


def _check_pose_version(path: Path, config: ClassifierConfig, metadata: dict[str, Any]) -> None:
    """A model trained on posed grids (``orientation="any"``) must have seen poses this version can still compute
    (files written before the version was recorded had version 1)."""
    version = metadata.get("pose_version", 1)
    if config.orientation == "any" and version not in POSE_VERSIONS:
        problem = f"trained on grids posed by pose version {version}, this VoxelStudio poses them with versions"
        known = ", ".join(map(str, POSE_VERSIONS))
        raise ModelError(path, f"{problem} {known}, so its predictions would be wrong; train it again")


def _check_classifier_shapes(path: Path, model: keras.Model, classes: tuple[str, ...]) -> None:
    """A classifier maps (N, H, W, Z, 1) to (N, len(classes))."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(path, "a classifier needs exactly one input and one output")
    in_shape, out_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(in_shape) != 5 or in_shape[-1] != 1 or None in in_shape[1:]:
        raise ModelError(path, f"classifier input must be (batch, H, W, Z, 1) with fixed sizes, got {in_shape}")
    if len(out_shape) != 2 or out_shape[-1] != len(classes) or len(classes) < 2:
        raise ModelError(path, f"model has {out_shape[-1]} outputs but {len(classes)} class names in its metadata")
