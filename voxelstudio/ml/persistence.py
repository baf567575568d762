"""Save and load denoisers as one ``.keras`` file that also carries VoxelStudio's metadata.

A ``.keras`` file is a zip; ``save_model`` adds a ``voxelstudio.json`` member (training config, normaliser,
version, receptive field, size multiple) next to Keras' own members, and writes atomically. ``load_model`` refuses
files that contain code (Lambda layers) unless the caller trusts them, and turns every failure into a one-line
``ModelError``.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import voxelstudio
from voxelstudio.core.atomic import write_atomically
from voxelstudio.core.errors import ModelError
from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.ml import blocks, losses  # noqa: F401  (registers the custom layers and losses for loading)
from voxelstudio.ml.backend import keras  # started there: on TensorFlow without JAX (about 100 MB less)
from voxelstudio.ml.config import TrainConfig
from voxelstudio.ml.denoisers import receptive_field, required_multiple
from voxelstudio.ml.model_file import (
    CLASSIFIER_FORMAT,
    DENOISER_FORMAT,
    FORMAT_VERSION,
    METADATA_MEMBER,
    OPTIMIZER_MEMBER,
)
from voxelstudio.ml.spacing import SPACING_FEATURES, takes_spacing

INPUT_SHIFT_KEY = "input_shift_vox"
FLIPPED_SHIFT_KEY = "flipped_input_shift_vox"
SHIFT_SPACING_KEY = "input_shift_spacing_um"
NO_SHIFT = (0.0, 0.0, 0.0)
CODE_MESSAGE = "contains code (Lambda layer); load it only if you trust it (--trust)"


@dataclass(frozen=True)
class LoadedModel:
    """A loaded network with what is needed to use it: training config, normaliser, metadata and file hash."""

    model: keras.Model
    train_config: TrainConfig | None
    normalizer: PercentileNormalizer
    metadata: dict[str, Any]
    sha256: str
    input_shift: tuple[float, float, float] = NO_SHIFT
    """Voxels (y, x, z) prediction moves the scan by before the network (``metadata["input_shift_vox"]``): adapt
    measures how far the model puts beads from where they are and stores the correction (tasks/adapt.py)."""
    flipped_input_shift: tuple[float, float, float] | None = None
    """The same for the z-flipped views of test-time augmentation, whose beads a model may put elsewhere
    (``metadata["flipped_input_shift_vox"]``); None: :attr:`input_shift`."""
    shift_spacing: tuple[float, float, float] | None = None
    """The voxel size (y, x, z µm) of the scans the shifts were measured on (``metadata["input_shift_spacing_um"]``);
    None: not known, and the shifts are voxels of any scan."""

    def shift_for(self, flip_z: bool) -> tuple[float, float, float]:
        """What a view (z-flipped or not) of the scan is moved by, in the scan's own orientation."""
        if flip_z and self.flipped_input_shift is not None:
            return self.flipped_input_shift
        return self.input_shift

    def for_spacing(self, spacing: Sequence[float] | None) -> LoadedModel:
        """This model with its shifts in voxels of a scan of voxel size ``spacing`` (y, x, z µm; None: unknown, the
        shifts as they are): where a model puts beads is a distance, so a shift measured on 0.1-µm planes is a third
        of the planes on 0.3-µm ones (the bundled model put beads 0.070, 0.090 and 0.075 µm deep at z steps of 0.1,
        0.2 and 0.3 µm: 0.70, 0.45 and 0.25 planes)."""
        if spacing is None or self.shift_spacing is None:
            return self
        scale = [measured / float(size) for measured, size in zip(self.shift_spacing, spacing, strict=True)]

        def scaled(shift: Sequence[float]) -> tuple[float, float, float]:
            y, x, z = (round(float(v) * k, 4) + 0.0 for v, k in zip(shift, scale, strict=True))
            return y, x, z

        flipped = None if self.flipped_input_shift is None else scaled(self.flipped_input_shift)
        new_spacing = tuple(float(v) for v in spacing)
        return replace(self, input_shift=scaled(self.input_shift), flipped_input_shift=flipped,
                       shift_spacing=new_spacing)  # type: ignore[arg-type]  # fmt: skip


def save_model(
    model: keras.Model,
    path: str | Path,
    *,
    train_config: TrainConfig,
    normalizer: PercentileNormalizer,
    extra: dict[str, Any] | None = None,
    optimizer_state: bool = False,
    input_shift: Sequence[float] | None = None,
    flipped_input_shift: Sequence[float] | None = None,
    shift_spacing: Sequence[float] | None = None,
) -> Path:
    """Write ``model`` and its metadata to ``path`` (a ``.keras`` file), replacing it atomically; the optimizer's
    variables are kept only with ``optimizer_state`` (training checkpoints); ``input_shift``,
    ``flipped_input_shift`` and ``shift_spacing``: see :class:`LoadedModel`."""
    path = keras_path(path)
    metadata = {
        **metadata_header(DENOISER_FORMAT, FORMAT_VERSION),
        "train_config": train_config.to_dict(),
        "normalizer": normalizer.to_dict(),
        "receptive_field": list(receptive_field(train_config.model)),
        "required_multiple": list(required_multiple(train_config.model)),
        "extra": extra or {},
    }
    plain = [round(float(v), 4) + 0.0 for v in input_shift or NO_SHIFT]
    if any(plain):
        metadata[INPUT_SHIFT_KEY] = plain
    flipped = None if flipped_input_shift is None else [round(float(v), 4) + 0.0 for v in flipped_input_shift]
    if flipped is not None and flipped != plain:  # the same as the plain shift: that one serves
        metadata[FLIPPED_SHIFT_KEY] = flipped
    if shift_spacing is not None and (any(plain) or FLIPPED_SHIFT_KEY in metadata):
        metadata[SHIFT_SPACING_KEY] = [float(v) for v in _positive_triple(shift_spacing, SHIFT_SPACING_KEY)]
    try:
        text = json.dumps(metadata, indent=2, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"{path}: model metadata is not JSON-serialisable: {exc}") from exc
    return write_keras_with_metadata(model, path, text, optimizer_state=optimizer_state)


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
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_keras_with_metadata(
    model: keras.Model, path: Path, metadata_json: str, *, optimizer_state: bool = False
) -> Path:
    """Save ``model`` to ``path`` atomically with ``metadata_json`` as an extra member of the .keras zip.

    The network is saved without its compiled optimizer, so the file carries nothing backend-specific; with
    ``optimizer_state`` (training checkpoints) the optimizer's variables go into :data:`OPTIMIZER_MEMBER`.
    The temporary file keeps the ``.keras`` suffix Keras insists on; one left by a killed process is removed by the
    next save of the same file (see :mod:`voxelstudio.core.atomic`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    optimizer = getattr(model, "optimizer", None)
    network = model if optimizer is None else keras.Model(model.input, model.output, name=model.name)
    if any(layer.dtype_policy.name.startswith("mixed") for layer in network.layers):
        network = float32_copy(network)
    state = optimizer_arrays(optimizer) if optimizer_state and optimizer is not None else None

    def write(temporary: Path) -> None:
        keras.saving.save_model(network, temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(METADATA_MEMBER, metadata_json)
            if state is not None:
                archive.writestr(OPTIMIZER_MEMBER, state)

    return write_atomically(path, write, overwrite=True)


def float32_copy(model: keras.Model) -> keras.Model:
    """The same network computing in float32, for files that must predict well on any device (the weights of a
    mixed-precision model are float32 already; CPUs are slow or lack kernels in bf16/fp16)."""

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def optimizer_arrays(optimizer: keras.optimizers.Optimizer) -> bytes:
    """The optimizer's variables (step, learning rate, moments) as an ``.npz`` file's bytes, in their order."""
    buffer = io.BytesIO()
    np.savez(buffer, *[keras.ops.convert_to_numpy(v) for v in optimizer.variables])
    return buffer.getvalue()


def load_model(path: str | Path, *, trusted: bool = False) -> LoadedModel:
    """Load a ``.keras`` denoiser, or a BioImage Model Zoo package (``.zip``) that VoxelStudio exported;
    ``trusted=True`` allows models that contain code (Lambda layers)."""
    path = Path(path)
    if path.suffix.lower() == ".zip":
        from voxelstudio.ml.bioimageio import load_bioimageio

        return load_bioimageio(path, trusted=trusted)
    if not path.is_file():
        raise ModelError(path, "is a folder, not a model file" if path.is_dir() else "model file not found")
    config, metadata = read_members(path)
    if metadata.get("format") == CLASSIFIER_FORMAT:
        raise ModelError(path, "is a voxel classifier, not a denoiser")
    model = load_network(path, config, metadata, trusted=trusted)
    _check_io_shapes(path, model)
    try:
        train_config = TrainConfig.from_dict(metadata["train_config"]) if "train_config" in metadata else None
        normalizer = PercentileNormalizer.from_dict(metadata.get("normalizer", {}))
        shift = shift_of(metadata, INPUT_SHIFT_KEY) or NO_SHIFT
        flipped = shift_of(metadata, FLIPPED_SHIFT_KEY)
        given = metadata.get(SHIFT_SPACING_KEY)
        shift_spacing = None if given is None else _positive_triple(given, SHIFT_SPACING_KEY)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a member of the wrong JSON type
        raise ModelError(path, f"invalid VoxelStudio metadata: {exc}") from exc
    return LoadedModel(model, train_config, normalizer, metadata, file_sha256(path), shift, flipped, shift_spacing)


def _positive_triple(value: Any, key: str) -> tuple[float, float, float]:
    """``value`` as 3 positive finite numbers; ValueError naming ``key`` otherwise."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{key} must be 3 numbers (y, x, z µm), got {value!r}")
    y, x, z = (float(v) for v in value)
    if not all(np.isfinite((y, x, z))) or min(y, x, z) <= 0:
        raise ValueError(f"{key} must be positive and finite, got {value!r}")
    return y, x, z


def shift_of(metadata: dict[str, Any], key: str) -> tuple[float, float, float] | None:
    """A shift of :class:`LoadedModel` from the metadata's ``key`` (None when absent); ValueError when it is not 3
    finite numbers."""
    value = metadata.get(key)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{key} must be 3 numbers (y, x, z voxels), got {value!r}")
    shift = tuple(float(v) for v in value)
    if not all(np.isfinite(shift)):
        raise ValueError(f"{key} must be finite, got {value!r}")
    return shift  # type: ignore[return-value]


def load_network(path: Path, config: dict[str, Any], metadata: dict[str, Any], *, trusted: bool) -> keras.Model:
    """The Keras network of a model file whose members :func:`read_members` returned, without its optimizer.

    Every failure is a one-line ``ModelError``: code in an untrusted file, or Keras' own first line, naming both
    Keras versions when the file comes from a newer one.
    """
    if not trusted and contains_lambda(config):
        raise ModelError(path, CODE_MESSAGE)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trusted)
    except Exception as exc:  # Keras raises many types for bad files; the user needs one line
        if not trusted and "safe_mode" in str(exc):
            raise ModelError(path, CODE_MESSAGE) from exc
        saved_with = str(metadata.get("keras_version") or "")
        if _version_tuple(saved_with) > _version_tuple(keras.__version__):
            raise ModelError(
                path, f"was saved with Keras {saved_with}, newer than this Keras {keras.__version__}; "
                "upgrade Keras (pip install -U keras) to load it",
            ) from exc  # fmt: skip
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(path, f"cannot load the Keras model: {problem}") from exc


def _version_tuple(version: str) -> tuple[int, ...]:
    """(3, 15, 1) from "3.15.1" (pre-release suffixes ignored; () when there is no version)."""
    numbers = []
    for part in version.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


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
    for member, value in (("config.json", config), (METADATA_MEMBER, metadata)):
        if not isinstance(value, dict):
            raise ModelError(path, f"damaged model file ({member} holds a {type(value).__name__}, not an object)")
    _check_format_version(path, metadata)
    return config, metadata


def _check_format_version(path: Path, metadata: dict[str, Any]) -> None:
    """ModelError when VoxelStudio metadata is of a newer layout than this version reads (or its version is not a
    number); files without metadata or without a version (plain Keras files) pass."""
    version = metadata.get("format_version")
    if metadata.get("format") not in (DENOISER_FORMAT, CLASSIFIER_FORMAT) or version is None:
        return
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(path, f"invalid VoxelStudio metadata: format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise ModelError(
            path, f"was written by a newer VoxelStudio ({metadata.get('voxelstudio_version', 'unknown version')}, "
            f"model format {version}; this one reads up to {FORMAT_VERSION}); upgrade VoxelStudio to load it",
        )  # fmt: skip


def contains_lambda(node: Any) -> bool:
    """True when a Keras config tree contains a Lambda layer (arbitrary Python code)."""
    if isinstance(node, dict):
        return node.get("class_name") == "Lambda" or any(contains_lambda(v) for v in node.values())
    if isinstance(node, list):
        return any(contains_lambda(v) for v in node)
    return False


def _check_io_shapes(path: Path, model: keras.Model) -> None:
    """A denoiser maps (N, H, W, Z, 1) to (N, H, W, Z, 1), given the voxel-size features (N, 2) as a second input
    when it is spacing-conditioned."""
    if len(model.outputs) != 1 or len(model.inputs) not in (1, 2):
        raise ModelError(path, "a denoiser needs one input (or a volume and its voxel size) and one output")
    if takes_spacing(model) and tuple(model.inputs[1].shape)[1:] != (SPACING_FEATURES,):
        raise ModelError(path, f"a second input must be the voxel size, (batch, {SPACING_FEATURES}) numbers")
    for role, tensor in (("input", model.inputs[0]), ("output", model.outputs[0])):
        shape = tuple(tensor.shape)
        if len(shape) != 5 or shape[-1] != 1:
            raise ModelError(path, f"model {role} must be 5-D (batch, H, W, Z, 1), got {shape}")


def restore_optimizer_state(model: keras.Model, checkpoint: str | Path) -> bool:
    """Copy the optimizer variables (moments, step) of our own ``checkpoint`` into ``model``'s optimizer.

    Works whichever backend wrote the checkpoint. When its variables do not fit this optimizer (another optimizer
    or precision policy), or an old checkpoint's compiled optimizer cannot be read, the optimizer starts afresh
    with a one-line warning; returns whether the state was restored.
    """
    checkpoint = Path(checkpoint)
    target = model.optimizer
    target.build(model.trainable_variables)
    try:
        arrays = _read_optimizer_arrays(checkpoint)
    except Exception as exc:  # an old checkpoint whose compiled optimizer this backend cannot deserialise
        arrays, problem = None, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    else:
        problem = "its optimizer variables do not match this optimizer"
    if arrays is not None and [a.shape for a in arrays] == [tuple(v.shape) for v in target.variables]:
        for variable, value in zip(target.variables, arrays, strict=True):
            variable.assign(value)
        return True
    warnings.warn(f"{checkpoint}: optimizer state not restored ({problem}); the optimizer restarts", stacklevel=2)
    return False


def _read_optimizer_arrays(checkpoint: Path) -> list[np.ndarray] | None:
    with zipfile.ZipFile(checkpoint) as archive:
        if OPTIMIZER_MEMBER in archive.namelist():
            with np.load(io.BytesIO(archive.read(OPTIMIZER_MEMBER))) as data:
                return [data[f"arr_{i}"] for i in range(len(data.files))]
    compiled = keras.saving.load_model(checkpoint, compile=True)  # written before OPTIMIZER_MEMBER existed
    source = getattr(compiled, "optimizer", None)
    return None if source is None else [keras.ops.convert_to_numpy(v) for v in source.variables]
