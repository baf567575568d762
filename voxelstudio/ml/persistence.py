"""Save and load denoisers as one ``.keras`` file that also carries VoxelStudio's metadata.

A ``.keras`` file is a zip; ``save_model`` adds a ``voxelstudio.json`` member (training config, normaliser,
version, receptive field, size multiple) next to Keras' own members, and writes atomically. ``load_model`` refuses
files that contain code (Lambda layers) unless the caller trusts them, and turns every failure into a one-line
``ModelError``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras

import voxelstudio
from voxelstudio.core.atomic import write_atomically
from voxelstudio.core.errors import ModelError
from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.ml import blocks, losses  # noqa: F401  (registers the custom layers and losses for loading)
from voxelstudio.ml.config import TrainConfig
from voxelstudio.ml.denoisers import receptive_field, required_multiple

METADATA_MEMBER = "voxelstudio.json"
FORMAT = "voxelstudio-denoiser"
FORMAT_VERSION = 1
CODE_MESSAGE = "contains code (Lambda layer); load it only if you trust it (--trust)"


@dataclass(frozen=True)
class LoadedModel:
    """A loaded network with what is needed to use it: training config, normaliser, metadata and file hash."""

    model: keras.Model
    train_config: TrainConfig | None
    normalizer: PercentileNormalizer
    metadata: dict[str, Any]
    sha256: str


def save_model(
    model: keras.Model,
    path: str | Path,
    *,
    train_config: TrainConfig,
    normalizer: PercentileNormalizer,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its metadata to ``path`` (a ``.keras`` file), replacing it atomically."""
    path = keras_path(path)
    metadata = {
        **metadata_header(FORMAT, FORMAT_VERSION),
        "train_config": train_config.to_dict(),
        "normalizer": normalizer.to_dict(),
        "receptive_field": list(receptive_field(train_config.model)),
        "required_multiple": list(required_multiple(train_config.model)),
        "extra": extra or {},
    }
    try:
        text = json.dumps(metadata, indent=2, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"{path}: model metadata is not JSON-serialisable: {exc}") from exc
    return write_keras_with_metadata(model, path, text)


def keras_path(path: str | Path) -> Path:
    """``path`` as a Path; ValueError unless it ends in ``.keras`` (the only format Keras 3 saves whole)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a model file must end in .keras")
    return path


def metadata_header(format_name: str, format_version: int) -> dict[str, Any]:
    """The fields every VoxelStudio model file's metadata starts with: its format, the versions, the save time."""
    return {
        "format": format_name,
        "format_version": format_version,
        "voxelstudio_version": voxelstudio.__version__,
        "keras_version": keras.__version__,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_keras_with_metadata(model: keras.Model, path: Path, metadata_json: str) -> Path:
    """Save ``model`` to ``path`` atomically with ``metadata_json`` as an extra member of the .keras zip.

    The temporary file keeps the ``.keras`` suffix Keras insists on; one left by a killed process is removed by the
    next save of the same file (see :mod:`voxelstudio.core.atomic`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary: Path) -> None:
        keras.saving.save_model(model, temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(METADATA_MEMBER, metadata_json)

    return write_atomically(path, write, overwrite=True)


def load_model(path: str | Path, *, trusted: bool = False) -> LoadedModel:
    """Load a ``.keras`` denoiser; ``trusted=True`` allows models that contain code (Lambda layers)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "model file not found")
    config, metadata = read_members(path)
    if not trusted and contains_lambda(config):
        raise ModelError(path, CODE_MESSAGE)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not trusted)
    except Exception as exc:  # Keras raises many types for bad files; the user needs one line
        if not trusted and "safe_mode" in str(exc):
            raise ModelError(path, CODE_MESSAGE) from exc
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(path, f"cannot load the Keras model: {problem}") from exc
    _check_io_shapes(path, model)
    try:
        train_config = TrainConfig.from_dict(metadata["train_config"]) if "train_config" in metadata else None
        normalizer = PercentileNormalizer.from_dict(metadata.get("normalizer", {}))
    except (TypeError, ValueError) as exc:
        raise ModelError(path, f"invalid VoxelStudio metadata: {exc}") from exc
    return LoadedModel(model, train_config, normalizer, metadata, file_sha256(path))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (provenance of a prediction)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_members(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keras' ``config.json`` and our metadata ({} for a plain Keras file) from the zip, checked for damage."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            if damaged is not None:
                raise ModelError(path, f"corrupt model file (bad member {damaged})")
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelError(path, "not a Keras model file (no config.json inside)")
            config = json.loads(archive.read("config.json"))
            metadata = json.loads(archive.read(METADATA_MEMBER)) if METADATA_MEMBER in names else {}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise ModelError(path, f"not a readable .keras model file ({exc})") from exc
    return config, metadata


def contains_lambda(node: Any) -> bool:
    """True when a Keras config tree contains a Lambda layer (arbitrary Python code)."""
    if isinstance(node, dict):
        return node.get("class_name") == "Lambda" or any(contains_lambda(v) for v in node.values())
    if isinstance(node, list):
        return any(contains_lambda(v) for v in node)
    return False


def _check_io_shapes(path: Path, model: keras.Model) -> None:
    """A denoiser maps (N, H, W, Z, 1) to (N, H, W, Z, 1)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(path, "a denoiser needs exactly one input and one output")
    for role, tensor in (("input", model.inputs[0]), ("output", model.outputs[0])):
        shape = tuple(tensor.shape)
        if len(shape) != 5 or shape[-1] != 1:
            raise ModelError(path, f"model {role} must be 5-D (batch, H, W, Z, 1), got {shape}")


def restore_optimizer_state(model: keras.Model, checkpoint: str | Path) -> None:
    """Copy the optimizer variables (moments, step) of our own ``checkpoint`` into ``model``'s optimizer.

    Only for checkpoints this program wrote (it loads them compiled); skipped when the variable shapes differ.
    """
    compiled = keras.saving.load_model(checkpoint, compile=True)
    source, target = getattr(compiled, "optimizer", None), model.optimizer
    target.build(model.trainable_variables)
    if source is not None and [v.shape for v in source.variables] == [v.shape for v in target.variables]:
        for dst, src in zip(target.variables, source.variables, strict=True):
            dst.assign(src)
