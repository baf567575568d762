"""Voxception-ResNet building blocks (Brock et al. 2016) over the shared blocks in :mod:`voxelstudio.ml.blocks`.

- :class:`StochasticDepth`: drops a residual branch per sample while training (survivors scaled by 1/keep, so the
  expectation is unchanged) and is the identity at inference.
- :func:`vrn_block`: pre-activation (norm -> ELU), then two inception branches concatenated back to the input's
  width, A = 1^3 (C/4) -> 3^3 (C/4) -> 1^3 (C/2) and B = 3^3 (C/4) -> 3^3 (C/2), added to the input.
- :func:`vrn_downsample`: pre-activation, then four branches of C_out/4 concatenated: 3^3 stride 2, 1^3 stride 2,
  3^3 then max-pool 3 stride 2, 3^3 then average-pool 3 stride 2 (:class:`InsideAveragePooling3D`).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from voxelstudio.ml.blocks import conv_block, inception_branches, normalization, separable_conv3d


@keras.saving.register_keras_serializable(package="voxelstudio")
class InsideAveragePooling3D(keras.layers.AveragePooling3D):
    """Average pooling whose "same" padding averages only the voxels inside the volume, on every backend.

    TensorFlow and JAX leave the padding out of each average; Keras' PyTorch backend pads an uneven "same" with
    copies of the edge (a VRN saved under one backend then predicted differently under the other). Here the input is
    zero-padded as TensorFlow pads it (the odd voxel after), pooled "valid", and divided by the pooled share of
    voxels inside.
    """

    def call(self, inputs: Any) -> Any:
        if self.padding != "same":
            return super().call(inputs)
        pads = [(0, 0)]
        for axis in range(3):
            size, kernel, stride = inputs.shape[axis + 1], self.pool_size[axis], self.strides[axis]
            largest = max if size is not None else ops.maximum  # a traced size in TensorFlow graphs
            size = ops.shape(inputs)[axis + 1] if size is None else int(size)
            total = largest(((size + stride - 1) // stride - 1) * stride + kernel - size, 0)
            before = total // 2
            pads.append((before, total - before))
        pads.append((0, 0))
        inside = ops.pad(ops.ones_like(inputs[:1, ..., :1]), pads)
        summed = ops.average_pool(ops.pad(inputs, pads), self.pool_size, self.strides, padding="valid")
        return summed / ops.average_pool(inside, self.pool_size, self.strides, padding="valid")


@keras.saving.register_keras_serializable(package="voxelstudio")
class StochasticDepth(keras.layers.Layer):
    """Keep a residual branch with probability ``keep_prob`` per sample while training (scaled by 1/keep_prob);
    pass it through unchanged at inference."""

    def __init__(self, keep_prob: float = 1.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
        self.keep_prob = float(keep_prob)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x: Any, training: bool | None = None) -> Any:
        if not training or self.keep_prob >= 1.0:
            return x
        noise_shape = (keras.ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        return keras.random.dropout(x, 1.0 - self.keep_prob, noise_shape=noise_shape, seed=self.seed_generator)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "keep_prob": self.keep_prob, "seed": self.seed}


def keep_probabilities(count: int, min_keep: float = 0.25) -> list[float]:
    """Linearly decaying survival probabilities of ``count`` residual branches: 1 - (i / count) * (1 - min_keep)
    for i = 1..count, so the deepest branch keeps ``min_keep`` (Huang et al.'s linear rule)."""
    return [1.0 - (i / count) * (1.0 - min_keep) for i in range(1, count + 1)]


def pre_activation(x: Any, norm: str, name: str) -> Any:
    """Normalisation -> ELU (the pre-activation that opens every VRN block)."""
    x = normalization(norm, name=f"{name}_preact_norm", channels=x.shape[-1])(x)
    return keras.layers.Activation("elu", name=f"{name}_preact_elu")(x)


def _conv(
    x: Any,
    filters: int,
    kernel: int,
    *,
    norm: str,
    activation: str | None,
    separable: bool = False,
    strides: int = 1,
    name: str,
) -> Any:
    """Conv -> norm -> activation; a 3^3 stride-1 conv is depthwise-separable when ``separable``."""
    if not (separable and kernel > 1 and strides == 1):
        return conv_block(x, filters, kernel, norm, activation, strides=strides, name=name)
    x = separable_conv3d(x, filters, kernel, name=name)
    if norm != "none":
        x = normalization(norm, name=f"{name}_norm", channels=filters)(x)
    return keras.layers.Activation(activation, name=f"{name}_act")(x) if activation else x


def vrn_block(x: Any, *, keep_prob: float = 1.0, norm: str = "batch", separable: bool = False, name: str) -> Any:
    """Voxception residual block of C = x's channels (C >= 4): x + drop(concat(A(y), B(y))), y = ELU(norm(x))."""
    channels = int(x.shape[-1])
    quarter, half = max(channels // 4, 1), channels // 2
    y = pre_activation(x, norm, name)
    settings = {"norm": norm, "separable": separable}

    def branch_a(t: Any) -> Any:
        t = _conv(t, quarter, 1, activation="elu", name=f"{name}_a1", **settings)
        t = _conv(t, quarter, 3, activation="elu", name=f"{name}_a2", **settings)
        return _conv(t, half, 1, norm="none", activation=None, name=f"{name}_a3")

    def branch_b(t: Any) -> Any:
        t = _conv(t, quarter, 3, activation="elu", name=f"{name}_b1", **settings)
        return _conv(t, channels - half, 3, norm="none", activation=None, separable=separable, name=f"{name}_b2")

    branch = inception_branches(y, [branch_a, branch_b], name=f"{name}_concat")
    branch = StochasticDepth(keep_prob, name=f"{name}_drop")(branch)
    return keras.layers.Add(name=f"{name}_add")([x, branch])


def vrn_downsample(x: Any, filters: int, *, norm: str = "batch", name: str) -> Any:
    """Voxception downsampling block to ``filters`` channels (a multiple of 4) at half the resolution."""
    quarter = filters // 4
    y = pre_activation(x, norm, name)

    def strided(kernel: int, tag: str) -> Any:
        return lambda t: _conv(t, quarter, kernel, norm=norm, activation=None, strides=2, name=f"{name}_{tag}")

    def pooled(pool: type[keras.layers.Layer], tag: str) -> Any:
        def branch(t: Any) -> Any:
            t = conv_block(t, quarter, 3, "none", None, name=f"{name}_{tag}")
            t = pool(pool_size=3, strides=2, padding="same", name=f"{name}_{tag}_pool")(t)
            return normalization(norm, name=f"{name}_{tag}_norm", channels=quarter)(t)

        return branch

    branches = [
        strided(3, "conv3"),
        strided(1, "conv1"),
        pooled(keras.layers.MaxPooling3D, "max"),
        pooled(InsideAveragePooling3D, "avg"),
    ]
    return inception_branches(y, branches, name=f"{name}_concat")
