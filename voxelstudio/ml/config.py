"""Frozen, JSON-serialisable configurations for models and training. Imports no TensorFlow."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ARCHITECTURES = ("simple", "unet", "resunet")
LOSSES = ("imbalanced", "mae", "mse", "ssim", "mae+ssim")
NORMALIZATIONS = ("none", "batch", "layer", "instance", "group")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear", "relu")
PRESETS = ("auto", "cpu", "gpu")
"""Training recipes by device: ``cpu`` fits a 2-core laptop, ``gpu`` keeps a GPU busy, ``auto`` picks by device."""

T = TypeVar("T", bound="_JsonConfig")


class _JsonConfig:
    """Mixin: dict/JSON round-trip for frozen dataclasses whose tuple fields come back as tuples."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """The config ``data`` describes; ValueError naming the field when a value has the wrong type."""
        if not isinstance(data, dict):
            raise ValueError(f"a {cls.__name__} is a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        values = {}
        for name, value in data.items():
            factory = known[name].default_factory
            if factory is not dataclasses.MISSING and isinstance(factory(), _JsonConfig):  # nested config
                if not isinstance(value, dict):
                    raise ValueError(f"{cls.__name__} field {name!r} is a JSON object, got {value!r}")
                values[name] = factory().completed(value)
            else:
                values[name] = _typed(value, hints[name], f"{cls.__name__} field {name!r}")
        return cls(**values)  # type: ignore[call-arg]

    def completed(self: T, data: dict[str, Any]) -> T:
        """The config ``data`` describes, with this one's values for the fields it leaves out (a nested config in a
        file that gives only some of its fields keeps the outer config's defaults for the rest)."""
        return type(self).from_dict({**self.to_dict(), **data})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        """The config in the JSON file ``path``; ValueError starting with the file's name when it cannot be."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the config file ({exc.strerror or exc})") from exc
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a JSON config file (binary content)") from None
        try:
            return cls.from_json(text)
        except ValueError as exc:  # json.JSONDecodeError included
            raise ValueError(f"{path}: {exc}") from exc


def _typed(value: Any, hint: Any, what: str) -> Any:
    """``value`` as the JSON form of ``hint`` (bool, int, float, str, a tuple of those, or one of them or None)
    gives it: lists become tuples, integers become floats where a float is wanted; ValueError naming ``what``."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        origin = typing.get_origin(option)
        if origin is tuple and isinstance(value, (list, tuple)):
            items = typing.get_args(option)
            items = items[:1] * len(value) if len(items) == 2 and items[1] is Ellipsis else items
            if len(items) == len(value):
                return tuple(
                    _typed(v, item, f"item {i + 1} of {what}")
                    for i, (v, item) in enumerate(zip(value, items, strict=True))
                )
        elif option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # a JSON integer beyond any float
                break
        elif option in (int, str, bool) and type(value) is option:
            return value
    wanted = " or ".join(_described(o) for o in options)
    raise ValueError(f"{what} must be {wanted}, got {value!r}")


def _described(hint: Any, plural: bool = False) -> str:
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is tuple:
        items = typing.get_args(hint)
        count = "" if items[-1] is Ellipsis else f"{len(items)} "
        return f"a list of {count}{_described(items[0], plural=True)}"
    names = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers")}
    names[str] = ("a string", "strings")
    return names[hint][plural] if hint in names else str(hint)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class DenoiserConfig(_JsonConfig):
    """Architecture of a 3-D denoiser.

    - ``simple``: ``n_layers`` stacked Conv3D of ``filters`` channels with a large anisotropic ``kernel`` (the
      original 16x16x8 plain CNN), no pooling.
    - ``unet``: 3-D U-Net with ``depth`` levels, ``filters`` at the top doubling per level, concatenated skips.
    - ``resunet``: CARE-style U-Net that predicts a correction added to the input, with ``norm`` normalisation.

    ``depth`` counts resolution levels (``depth - 1`` poolings), so CARE's ``n_depth=2`` is ``depth=3`` here.

    ``pool_z=False`` pools only in y and x (z holds few slices). Input (H, W, Z) of any size is padded to the
    network's multiple and cropped back.

    ``spacing_input``: the network also takes each volume's voxel size and conditions every level on it
    (:mod:`voxelstudio.ml.spacing`); such a model needs the voxel size of whatever it predicts.
    """

    arch: str = "simple"
    filters: int = 4
    kernel: tuple[int, int, int] = (16, 16, 8)
    n_layers: int = 4
    depth: int = 3
    norm: str = "none"
    pool_z: bool = True
    dropout: float = 0.0
    output_activation: str = "sigmoid"
    spacing_input: bool = False

    def validate(self) -> DenoiserConfig:
        _check(
            self.arch in ARCHITECTURES, f"unknown architecture {self.arch!r}; choose from {', '.join(ARCHITECTURES)}"
        )
        _check(self.filters >= 1, "filters must be >= 1")
        _check(len(self.kernel) == 3 and all(k >= 1 for k in self.kernel), "kernel must be three sizes >= 1")
        _check(self.n_layers >= 1, "n_layers must be >= 1")
        _check(1 <= self.depth <= 5, "depth must be between 1 and 5")
        _check(self.norm in NORMALIZATIONS, f"unknown normalisation {self.norm!r}; choose from {NORMALIZATIONS}")
        _check(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        _check(self.output_activation in OUTPUT_ACTIVATIONS, f"output activation must be one of {OUTPUT_ACTIVATIONS}")
        return self

    def completed(self, data: dict[str, Any]) -> DenoiserConfig:
        """As for every config, except that another ``arch`` starts from that architecture's defaults."""
        arch = data.get("arch", self.arch)
        base = self if arch == self.arch or arch not in ARCHITECTURES else DenoiserConfig.for_arch(arch)
        return DenoiserConfig.from_dict({**base.to_dict(), **data})

    @classmethod
    def for_arch(cls, arch: str, **overrides: Any) -> DenoiserConfig:
        """Sensible defaults per architecture (the original work's layers where it had them) with a linear output:
        a sigmoid output stalls at black under MSE, since its gradient vanishes where most voxels are (near 0)."""
        defaults: dict[str, dict[str, Any]] = {
            "simple": {"filters": 4, "kernel": (16, 16, 8), "n_layers": 4, "norm": "none"},
            "unet": {"filters": 8, "kernel": (3, 3, 6), "depth": 3, "norm": "none"},
            "resunet": {"filters": 16, "kernel": (3, 3, 3), "depth": 3, "norm": "group", "pool_z": False},
        }
        if arch not in defaults:
            raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
        return cls(arch=arch, **{"output_activation": "linear", **defaults[arch], **overrides}).validate()


@dataclass(frozen=True)
class LossConfig(_JsonConfig):
    """Training loss. ``imbalanced``: mean(w * |y - yhat|), w = ``weight`` where y >= ``threshold`` else 1.

    ``mae+ssim`` is ``mae_weight * MAE + ssim_weight * (1 - SSIM)``.
    """

    name: str = "imbalanced"
    threshold: float = 0.1
    weight: float = 1000.0
    mae_weight: float = 1.0
    ssim_weight: float = 1.0

    def validate(self) -> LossConfig:
        _check(self.name in LOSSES, f"unknown loss {self.name!r}; choose from {', '.join(LOSSES)}")
        _check(self.weight > 0, "loss weight must be > 0")
        return self


@dataclass(frozen=True)
class TrainConfig(_JsonConfig):
    """Everything that decides a denoiser training run. Defaults work on the bundled sample on a CPU: the U-Net with
    a linear output and MSE, the best of benchmarks/denoise.py (the original's plain CNN and imbalanced L1 remain a
    choice: ``DenoiserConfig.for_arch("simple")``, ``LossConfig(name="imbalanced")``)."""

    model: DenoiserConfig = field(default_factory=lambda: DenoiserConfig.for_arch("unet"))
    loss: LossConfig = field(default_factory=lambda: LossConfig(name="mse"))
    epochs: int = 100
    minutes: float | None = None
    learning_rate: float = 1e-3
    batch_size: int = 4
    patch_shape: tuple[int, int, int] = (64, 64, 32)
    steps_per_epoch: int = 16
    val_fraction: float = 0.2
    bead_bias: float = 0.7
    augment: bool = True
    lr_patience: int = 10
    early_stopping_patience: int = 30
    seed: int = 0
    preset: str = "cpu"
    mixed_precision: bool = False

    def validate(self) -> TrainConfig:
        self.model.validate()
        self.loss.validate()
        _check(self.epochs >= 1, "epochs must be >= 1")
        _check(self.minutes is None or self.minutes > 0, "minutes must be > 0")
        _check(self.learning_rate > 0, "learning rate must be > 0")
        _check(self.batch_size >= 1, "batch size must be >= 1")
        _check(len(self.patch_shape) == 3 and all(p >= 4 for p in self.patch_shape), "patch sizes must be >= 4")
        _check(self.steps_per_epoch >= 1, "steps per epoch must be >= 1")
        _check(0.0 <= self.val_fraction < 1.0, "validation fraction must be in [0, 1)")
        _check(0.0 <= self.bead_bias <= 1.0, "bead bias must be in [0, 1]")
        _check(self.preset in PRESETS[1:], f"preset must be one of {', '.join(PRESETS[1:])}")
        _check(self.seed >= 0 and int(self.seed) == self.seed, f"seed must be a whole number >= 0, got {self.seed!r}")
        return self


def resolve_preset(preset: str, device_kind: str) -> str:
    """``cpu`` or ``gpu``: ``auto`` follows the device kind ("GPU" or "CPU")."""
    _check(preset in PRESETS, f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if preset != "auto":
        return preset
    return "gpu" if device_kind == "GPU" else "cpu"


def preset_config(preset: str) -> TrainConfig:
    """The training recipe of a resolved preset (``cpu`` or ``gpu``).

    ``cpu`` is today's default (8-filter U-Net, 64x64x32 patches, batches of 4): it trains in CPU-minutes. On a GPU
    that starves the card, so ``gpu`` trains a 32-filter U-Net on 128x128x32 patches in batches of 16 with 64 steps
    an epoch and mixed precision (bf16 on cards that have it).
    """
    if preset == "cpu":
        return TrainConfig(preset="cpu")
    _check(preset == "gpu", f"unknown preset {preset!r}; choose from cpu, gpu")
    return TrainConfig(
        model=DenoiserConfig.for_arch("unet", filters=32),
        batch_size=16,
        patch_shape=(128, 128, 32),
        steps_per_epoch=64,
        mixed_precision=True,
        preset="gpu",
    )
