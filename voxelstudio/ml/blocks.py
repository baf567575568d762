"""Functional-API building blocks for 3-D networks (channels-last, spatial axes (H, W, Z)).

Each block takes a tensor and returns a tensor, so denoisers and classifiers compose them freely. The two layers
``ReflectPad3D`` and ``CropLike`` let a model accept any spatial size: pad with mirrored data (not zeros) to the
network's multiple plus an optional margin, run, and crop back to the input's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import ops

Pads = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def group_count(channels: int, max_groups: int = 8) -> int:
    """Largest divisor of ``channels`` up to ``max_groups`` that leaves at least two channels per group."""
    for groups in range(min(max_groups, channels // 2), 1, -1):
        if channels % groups == 0:
            return groups
    return 1


def normalization(kind: str, name: str | None = None, *, channels: int | None = None) -> keras.layers.Layer:
    """A normalisation layer: ``none`` (identity), ``batch``, ``layer`` (per voxel over channels, ConvNeXt-style),
    ``instance`` (per channel over space) or ``group`` (``channels`` split into ``group_count(channels)`` groups)."""
    if kind == "none":
        return keras.layers.Identity(name=name)
    if kind == "batch":
        return keras.layers.BatchNormalization(name=name)
    if kind == "layer":
        return keras.layers.LayerNormalization(name=name)
    if kind == "instance":
        return keras.layers.GroupNormalization(groups=-1, name=name)
    if kind == "group":
        if channels is None:
            raise ValueError("group normalisation needs the channel count")
        return keras.layers.GroupNormalization(groups=group_count(channels), name=name)
    raise ValueError(f"unknown normalisation {kind!r}")


def conv_block(
    x: Any,
    filters: int,
    kernel: int | Sequence[int] = 3,
    norm: str = "none",
    activation: str | None = "relu",
    *,
    dropout: float = 0.0,
    padding: str = "same",
    strides: int | Sequence[int] = 1,
    name: str | None = None,
) -> Any:
    """Conv3D -> normalisation -> activation -> dropout. The bias is dropped when a normalisation follows."""
    x = keras.layers.Conv3D(
        filters, kernel, strides=strides, padding=padding, use_bias=norm == "none", name=name and f"{name}_conv"
    )(x)
    if norm != "none":
        x = normalization(norm, name=name and f"{name}_norm", channels=filters)(x)
    if activation:
        x = keras.layers.Activation(activation, name=name and f"{name}_act")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=name and f"{name}_drop")(x)
    return x


def residual_block(
    x: Any,
    filters: int,
    kernel: int | Sequence[int] = 3,
    norm: str = "none",
    activation: str = "relu",
    *,
    dropout: float = 0.0,
    name: str | None = None,
) -> Any:
    """Two convolutions added to a (1x1x1-projected when the width changes) shortcut, then the activation."""
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = keras.layers.Conv3D(filters, 1, name=name and f"{name}_proj")(x)
    y = conv_block(x, filters, kernel, norm, activation, dropout=dropout, name=name and f"{name}_a")
    y = conv_block(y, filters, kernel, norm, None, name=name and f"{name}_b")
    y = keras.layers.Add(name=name and f"{name}_add")([shortcut, y])
    return keras.layers.Activation(activation, name=name and f"{name}_act")(y)


def pool_size(pool_z: bool) -> tuple[int, int, int]:
    """Down/up-sampling factors per axis: z is left alone when ``pool_z`` is False."""
    return (2, 2, 2 if pool_z else 1)


def down(x: Any, pool_z: bool = True, name: str | None = None) -> Any:
    """Max-pool by 2 in y and x (and z when ``pool_z``)."""
    return keras.layers.MaxPooling3D(pool_size(pool_z), name=name)(x)


def up(x: Any, pool_z: bool = True, name: str | None = None) -> Any:
    """Nearest-neighbour upsampling by 2 in y and x (and z when ``pool_z``)."""
    return keras.layers.UpSampling3D(pool_size(pool_z), name=name)(x)


def separable_conv3d(
    x: Any, filters: int, kernel: int | Sequence[int] = 3, *, activation: str | None = None, name: str | None = None
) -> Any:
    """Depthwise-separable 3-D convolution: a grouped Conv3D (one group per channel), then a 1x1x1 Conv3D."""
    channels = x.shape[-1]
    x = keras.layers.Conv3D(channels, kernel, padding="same", groups=channels, name=name and f"{name}_depthwise")(x)
    return keras.layers.Conv3D(filters, 1, activation=activation, name=name and f"{name}_pointwise")(x)


def inception_branches(x: Any, branches: Sequence[Callable[[Any], Any]], name: str | None = None) -> Any:
    """Apply each branch to ``x`` and concatenate the results along channels."""
    return keras.layers.Concatenate(axis=-1, name=name)([branch(x) for branch in branches])


def dense_block(
    x: Any,
    n_layers: int,
    growth: int,
    kernel: int | Sequence[int] = 3,
    norm: str = "none",
    activation: str = "relu",
    name: str | None = None,
) -> Any:
    """DenseNet block: each conv sees the concatenation of the block input and every earlier conv's output."""
    features = [x]
    for i in range(n_layers):
        inputs = features[0] if len(features) == 1 else keras.layers.Concatenate(axis=-1)(features)
        features.append(conv_block(inputs, growth, kernel, norm, activation, name=name and f"{name}_{i}"))
    return keras.layers.Concatenate(axis=-1, name=name and f"{name}_out")(features)


def _pad_amounts(size: Any, pads: Sequence[int], multiple: int) -> tuple[Any, Any]:
    """(before, after) for one axis: the fixed pads plus what rounds the padded size up to ``multiple``,
    the rounding split evenly between both ends."""
    extra = (-(size + pads[0] + pads[1])) % multiple
    return pads[0] + extra // 2, pads[1] + extra - extra // 2


def _reflect_indices(size: Any, before: Any, after: Any) -> Any:
    """Source indices of a reflect-padded axis (numpy 'reflect'); mirrors repeatedly when pads exceed the size."""
    index = ops.arange(-before, size + after, dtype="int32")
    period = ops.maximum(2 * size - 2, 1)
    index = ops.mod(index + period * before, period)  # non-negative first: ONNX's Mod (tf2onnx) truncates negatives
    return ops.where(index >= size, period - index, index)


@keras.saving.register_keras_serializable(package="voxelstudio")
class ReflectPad3D(keras.layers.Layer):
    """Mirror-pad the spatial axes of (N, H, W, Z, C) by ``pads`` plus the rounding up to ``multiple``."""

    def __init__(self, pads: Pads = ((0, 0),) * 3, multiple: Sequence[int] = (1, 1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pads = tuple(tuple(int(p) for p in axis) for axis in pads)
        self.multiple = tuple(int(m) for m in multiple)

    def call(self, x: Any) -> Any:
        for axis in range(3):
            size = ops.shape(x)[axis + 1]
            before, after = _pad_amounts(size, self.pads[axis], self.multiple[axis])
            x = ops.take(x, _reflect_indices(size, before, after), axis=axis + 1)
        return x

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        spatial = [
            None if n is None else sum(_pad_amounts(n, p, m)) + n
            for n, p, m in zip(input_shape[1:4], self.pads, self.multiple, strict=True)
        ]
        return (input_shape[0], *spatial, input_shape[4])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pads": self.pads, "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="voxelstudio")
class CropLike(keras.layers.Layer):
    """Undo ``ReflectPad3D(pads, multiple)``: crop ``inputs[0]`` to the spatial size of ``inputs[1]``."""

    def __init__(self, pads: Pads = ((0, 0),) * 3, multiple: Sequence[int] = (1, 1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pads = tuple(tuple(int(p) for p in axis) for axis in pads)
        self.multiple = tuple(int(m) for m in multiple)

    def call(self, inputs: Sequence[Any]) -> Any:
        x, reference = inputs
        sizes = ops.shape(reference)[1:4]
        starts = [_pad_amounts(sizes[a], self.pads[a], self.multiple[a])[0] for a in range(3)]
        batch, channels = ops.shape(x)[0], ops.shape(x)[4]
        return ops.slice(x, [0, *starts, 0], [batch, *sizes, channels])

    def compute_output_shape(self, input_shapes: Sequence[Sequence[int | None]]) -> tuple[int | None, ...]:
        x_shape, reference_shape = input_shapes
        return (x_shape[0], *reference_shape[1:4], x_shape[4])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pads": self.pads, "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="voxelstudio")
class FiLM3D(keras.layers.Layer):
    """Feature-wise linear modulation (Perez et al. 2018): ``x * (1 + gamma) + beta`` per channel of (N, H, W, Z, C)
    features, with (gamma, beta) an affine map of a per-volume condition (N, K), e.g. the voxel size. Starts as the
    identity (zero kernel and bias), so a conditioned model begins as the plain one."""

    def build(self, input_shapes: Sequence[Sequence[int | None]]) -> None:
        x_shape, condition_shape = input_shapes
        channels, features = int(x_shape[-1]), int(condition_shape[-1])
        self.kernel = self.add_weight(shape=(features, 2 * channels), initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(2 * channels,), initializer="zeros", name="bias")

    def call(self, inputs: Sequence[Any]) -> Any:
        x, condition = inputs
        params = ops.matmul(ops.cast(condition, self.kernel.dtype), self.kernel) + self.bias
        params = ops.cast(params, x.dtype)
        gamma, beta = ops.split(params, 2, axis=-1)
        shape = (-1, 1, 1, 1, ops.shape(gamma)[-1])
        return x * (1 + ops.reshape(gamma, shape)) + ops.reshape(beta, shape)

    def compute_output_shape(self, input_shapes: Sequence[Sequence[int | None]]) -> tuple[int | None, ...]:
        return tuple(input_shapes[0])
