"""3-D denoisers: ``build_denoiser(cfg)`` and the geometry that tiling needs (receptive field, size multiple).

Every model takes (N, H, W, Z, C) of any spatial size and returns (N, H, W, Z, 1) of the same size: it mirror-pads
its input to the size it needs and crops the result back, so volume borders see reflected data instead of zeros.
With ``cfg.spacing_input`` it also takes each volume's voxel size as (N, 2) features (:mod:`voxelstudio.ml.spacing`)
and modulates every level's features with them (:class:`~voxelstudio.ml.blocks.FiLM3D`).

Keras is imported inside the builders so ``receptive_field``, ``required_multiple`` and ``pad_to_multiple`` load
without TensorFlow (tiling and the CLI use them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from voxelstudio.ml.config import DenoiserConfig

if TYPE_CHECKING:
    import keras


def build_denoiser(cfg: DenoiserConfig, in_channels: int = 1) -> keras.Model:
    """Build the (uncompiled) network that ``cfg.arch`` names."""
    cfg.validate()
    if in_channels < 1:
        raise ValueError("in_channels must be >= 1")
    builders = {"simple": _build_simple, "unet": _build_unet, "resunet": _build_resunet}
    return builders[cfg.arch](cfg, in_channels)


def _inputs(cfg: DenoiserConfig, in_channels: int) -> tuple[Any, Any]:
    """The volume input, and the voxel-size input (None without ``cfg.spacing_input``)."""
    import keras

    from voxelstudio.ml.spacing import INPUT_NAME, SPACING_FEATURES

    volume = keras.Input((None, None, None, in_channels), name="raw")
    return volume, keras.Input((SPACING_FEATURES,), name=INPUT_NAME) if cfg.spacing_input else None


def _conditioned(x: Any, spacing: Any, name: str) -> Any:
    """``x`` modulated by the voxel-size features (unchanged without them)."""
    from voxelstudio.ml import blocks

    return x if spacing is None else blocks.FiLM3D(name=f"{name}_film")([x, spacing])


def _model(inputs: Any, spacing: Any, outputs: Any, name: str) -> keras.Model:
    import keras

    return keras.Model(inputs if spacing is None else [inputs, spacing], outputs, name=name)


def _build_simple(cfg: DenoiserConfig, in_channels: int) -> keras.Model:
    """The original plain CNN: ``n_layers`` large-kernel convolutions, no pooling, a 1x1x1 linear output.

    The input is mirror-padded by exactly what the convolutions consume, so the (valid) convolutions give the same
    values as zero-padded 'same' ones would in the interior, and reflected context instead of zeros at the borders.
    """
    import keras

    from voxelstudio.ml import blocks

    inputs, spacing = _inputs(cfg, in_channels)
    x = blocks.ReflectPad3D(_same_pads(cfg.kernel, cfg.n_layers), name="reflect_pad")(inputs)
    for i in range(cfg.n_layers):
        x = blocks.conv_block(
            x, cfg.filters, cfg.kernel, cfg.norm, "relu", dropout=cfg.dropout, padding="valid", name=f"conv{i + 1}"
        )
        x = _conditioned(x, spacing, f"conv{i + 1}")
    outputs = keras.layers.Conv3D(1, 1, dtype="float32", name="output")(x)
    return _model(inputs, spacing, outputs, "simple_denoiser")


def _build_unet(cfg: DenoiserConfig, in_channels: int) -> keras.Model:
    """The original 3-D U-Net: two convolutions per level, max-pool, upsample + conv + skip, sigmoid output."""
    import keras

    from voxelstudio.ml import blocks

    inputs, spacing = _inputs(cfg, in_channels)
    padded = blocks.ReflectPad3D(multiple=required_multiple(cfg), name="reflect_pad")(inputs)
    x = _unet_body(padded, cfg, _double_conv, spacing)
    x = keras.layers.Conv3D(1, 1, activation=cfg.output_activation, dtype="float32", name="output")(x)
    outputs = blocks.CropLike(multiple=required_multiple(cfg), dtype="float32", name="crop")([x, inputs])
    return _model(inputs, spacing, outputs, "unet_denoiser")


def _build_resunet(cfg: DenoiserConfig, in_channels: int) -> keras.Model:
    """CARE-style U-Net: normalised residual blocks, a linear correction added to the input."""
    import keras

    from voxelstudio.ml import blocks

    inputs, spacing = _inputs(cfg, in_channels)
    padded = blocks.ReflectPad3D(multiple=required_multiple(cfg), name="reflect_pad")(inputs)
    x = _unet_body(padded, cfg, blocks.residual_block, spacing)
    correction = keras.layers.Conv3D(1, 1, dtype="float32", name="correction")(x)
    base = padded if in_channels == 1 else keras.layers.Conv3D(1, 1, dtype="float32", name="input_mix")(padded)
    x = keras.layers.Add(dtype="float32", name="output")([base, correction])
    outputs = blocks.CropLike(multiple=required_multiple(cfg), dtype="float32", name="crop")([x, inputs])
    return _model(inputs, spacing, outputs, "resunet_denoiser")


def _double_conv(
    x: Any, filters: int, kernel: Sequence[int], norm: str, activation: str, *, dropout: float, name: str
) -> Any:
    from voxelstudio.ml import blocks

    x = blocks.conv_block(x, filters, kernel, norm, activation, dropout=dropout, name=f"{name}_a")
    return blocks.conv_block(x, filters, kernel, norm, activation, dropout=dropout, name=f"{name}_b")


def _unet_body(x: Any, cfg: DenoiserConfig, level_block: Any, spacing: Any = None) -> Any:
    """Encoder/decoder with ``cfg.depth`` levels; ``level_block`` is the two-convolution unit of each level, whose
    output the voxel-size features (when given) modulate."""
    import keras

    from voxelstudio.ml import blocks

    def level(x: Any, filters: int, name: str) -> Any:
        x = level_block(x, filters, cfg.kernel, cfg.norm, "relu", dropout=cfg.dropout, name=name)
        return _conditioned(x, spacing, name)

    skips = []
    for i in range(cfg.depth - 1):
        x = level(x, cfg.filters * 2**i, f"down{i + 1}")
        skips.append(x)
        x = blocks.down(x, cfg.pool_z, name=f"pool{i + 1}")
    x = level(x, cfg.filters * 2 ** (cfg.depth - 1), "bottom")
    for i in reversed(range(cfg.depth - 1)):
        x = blocks.up(x, cfg.pool_z, name=f"upsample{i + 1}")
        x = blocks.conv_block(x, cfg.filters * 2**i, cfg.kernel, cfg.norm, "relu", name=f"upconv{i + 1}")
        x = keras.layers.Concatenate(name=f"skip{i + 1}")([x, skips[i]])
        x = level(x, cfg.filters * 2**i, f"up{i + 1}")
    return x


def _same_pads(kernel: Sequence[int], n_layers: int) -> tuple[tuple[int, int], ...]:
    """Total (before, after) padding of ``n_layers`` 'same' convolutions with ``kernel`` (Keras splits k - 1 so that
    the extra voxel of an even kernel goes after)."""
    return tuple((n_layers * ((k - 1) // 2), n_layers * (k - 1 - (k - 1) // 2)) for k in kernel)


def _pool_factors(cfg: DenoiserConfig) -> tuple[int, int, int]:
    return (2, 2, 2 if cfg.pool_z else 1)


def required_multiple(cfg: DenoiserConfig) -> tuple[int, int, int]:
    """Sizes (H, W, Z) the network works on are multiples of these; models pad to them internally."""
    if cfg.arch == "simple":
        return (1, 1, 1)
    return tuple(p ** (cfg.depth - 1) for p in _pool_factors(cfg))  # type: ignore[return-value]


def receptive_field(cfg: DenoiserConfig) -> tuple[int, int, int]:
    """Extent (H, W, Z) in input voxels that can influence one output voxel (an upper bound for the U-Nets).

    Counts convolutions and pooling only: group/instance normalisation also couples every output weakly to the
    whole input, so tiled prediction matches whole-volume prediction exactly only without them.
    """
    cfg.validate()
    if cfg.arch == "simple":
        return tuple(cfg.n_layers * (k - 1) + 1 for k in cfg.kernel)  # type: ignore[return-value]
    return tuple(_unet_receptive_field(k, p, cfg.depth) for k, p in zip(cfg.kernel, _pool_factors(cfg), strict=True))  # type: ignore[return-value]


def _unet_receptive_field(kernel: int, pool: int, depth: int) -> int:
    """Receptive field along one axis, the worst case over the pooling grid's alignment.

    Going down, each conv adds (k - 1) steps of the current stride and each pooling (pool - 1). Going up, a level's
    three convs (upsampled conv + two) span 3 (k - 1) fine voxels, which reach ceil(3 (k - 1) / pool) coarse ones.
    """
    field, step = 1, 1
    for _ in range(depth - 1):
        field += 2 * (kernel - 1) * step + (pool - 1) * step
        step *= pool
    field += 2 * (kernel - 1) * step
    for _ in range(depth - 1):
        field += -(-3 * (kernel - 1) // pool) * step
        step //= pool
    return field


def pad_to_multiple(
    x: np.ndarray, multiple: Sequence[int], *, axes: Sequence[int] = (0, 1, 2), mode: str = "reflect"
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Pad ``axes`` of ``x`` up to multiples of ``multiple`` (split evenly, mirrored by default).

    Returns the padded array and the index that cuts the original region back out of it (or out of a prediction
    laid out like it).
    """
    pad_width = [(0, 0)] * x.ndim
    crop = [slice(None)] * x.ndim
    for axis, m in zip(axes, multiple, strict=True):
        extra = (-x.shape[axis]) % m
        pad_width[axis] = (extra // 2, extra - extra // 2)
        crop[axis] = slice(extra // 2, extra // 2 + x.shape[axis])
    if all(before == after == 0 for before, after in pad_width):
        return x, tuple(crop)  # no copy: volumes can be GBs
    return np.pad(x, pad_width, mode=mode), tuple(crop)
