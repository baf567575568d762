"""3-D Grad-CAM (Selvaraju et al. 2017) for the voxel classifiers: where in the grid the evidence for a class lies.

The heat map is ReLU(sum_c w_c A_c) over the channels ``A_c`` of a spatial feature layer, each weighted by the mean
gradient of the class score (the logit before the softmax) with respect to it, resampled to the input grid along
the layer's receptive-field centres and scaled to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from voxelstudio.core.resample import resample_axes
from voxelstudio.ml.backend import value_and_gradient

_SKIPPED = (
    keras.layers.Dropout,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling3D,
    keras.layers.SpatialDropout3D,
)
"""Spatial layers that are not feature extractors: pooling and dropout after the last feature layer are skipped
so the map keeps the finer resolution of the layer before them."""

AxisMap = tuple[float, float]
"""(start, step): feature voxel ``i`` along an axis is centred on input coordinate ``start + step * i``."""


@dataclass(frozen=True)
class GradCam:
    """A heat map over the input grid with the class it explains and the model's probabilities."""

    heatmap: np.ndarray
    class_index: int
    probabilities: np.ndarray
    layer: str


def _spatial(shape: Sequence[int | None]) -> tuple[int, int, int] | None:
    """The (H, W, Z) of a 5-D (N, H, W, Z, C) shape, else None."""
    if len(shape) != 5 or any(n is None for n in shape[1:4]):
        return None
    return tuple(int(n) for n in shape[1:4])  # type: ignore[return-value]


def feature_layer(model: keras.Model, name: str | None = None) -> keras.layers.Layer:
    """The layer named ``name``, or the last layer with a spatial (N, H, W, Z, C) output that is neither pooling
    nor dropout (VoxNet: ``conv2_lrelu``; VRN: ``final_elu``). Raises ValueError when there is none."""
    if name is not None:
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise ValueError(f"model {model.name} has no layer {name!r}") from None
        if _spatial(layer.output.shape) is None:
            raise ValueError(f"layer {name!r} has output {tuple(layer.output.shape)}, not (N, H, W, Z, C)")
        return layer
    for layer in reversed(model.layers):
        if _spatial(layer.output.shape) is not None and not isinstance(layer, (keras.layers.InputLayer, *_SKIPPED)):
            return layer
    raise ValueError(f"model {model.name} has no 3-D convolutional feature layer")


def _geometry(layer: keras.layers.Layer) -> tuple[tuple[int, ...], tuple[int, ...], str] | None:
    """(effective kernel, strides, padding) of a convolution or pooling layer, else None."""
    kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    strides, padding = getattr(layer, "strides", None), getattr(layer, "padding", None)
    if kernel is None or strides is None or padding not in ("valid", "same"):
        return None
    dilation = getattr(layer, "dilation_rate", (1, 1, 1))
    kernel = tuple((int(k) - 1) * int(d) + 1 for k, d in zip(kernel, dilation, strict=True))
    return kernel, tuple(int(s) for s in strides), padding


def feature_grid_mapping(model: keras.Model, layer: keras.layers.Layer) -> tuple[AxisMap, AxisMap, AxisMap]:
    """Per axis, where ``layer``'s voxels are centred on the input grid (composed over the convolutions and poolings
    that change the resolution). Parallel branches reaching the same resolution are assumed to agree (the first
    one counts); layers of unknown geometry are assumed to cover the input evenly."""
    grids: dict[tuple[int, int, int], tuple[AxisMap, ...]] = {
        _spatial(model.inputs[0].shape): ((0.0, 1.0),) * 3  # type: ignore[dict-item]
    }
    target = _spatial(layer.output.shape)
    for each in model.layers:
        if isinstance(each, keras.layers.InputLayer):
            continue
        out = _spatial(each.output.shape)
        inputs = each.input
        source = None if isinstance(inputs, (list, tuple)) else _spatial(inputs.shape)
        if out is not None and out not in grids and source in grids:
            grids[out] = tuple(
                _compose(axis, n_in, n_out, _geometry(each), i)
                for i, (axis, n_in, n_out) in enumerate(zip(grids[source], source, out, strict=True))
            )
        if each is layer:
            break
    if target not in grids:
        raise ValueError(f"cannot relate layer {layer.name!r} to the input grid")
    return grids[target]  # type: ignore[return-value]


def _compose(axis: AxisMap, n_in: int, n_out: int, geometry, index: int) -> AxisMap:
    start, step = axis
    if geometry is None:  # even coverage: output voxel i spans input voxels [i*s, (i+1)*s)
        s = n_in / n_out
        return start + step * (s - 1) / 2, step * s
    kernel, strides, padding = geometry
    k, s = kernel[index], strides[index]
    pad_before = 0
    if padding == "same":  # TensorFlow's rule: the extra padding voxel goes after
        pad_before = max(k - (s if n_in % s == 0 else n_in % s), 0) // 2
    return start + step * ((k - 1) / 2 - pad_before), step * s


def _split(model: keras.Model, layer: keras.layers.Layer) -> tuple[keras.Model, keras.Model, keras.layers.Dense | None]:
    """(input -> [features, probabilities], features -> class scores, the softmax Dense layer or None).

    When the last layer is a softmax Dense, the scores are its input (the logits are computed from them with its
    kernel, so the gradient is that of the logit, not of the saturating probability); otherwise the outputs are.
    """
    last = model.layers[-1]
    softmax = isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax
    scores = last.input if softmax else model.outputs[0]
    probe = keras.Model(model.input, [layer.output, model.outputs[0]], name=f"{model.name}_gradcam")
    try:
        head = keras.Model(layer.output, scores, name=f"{model.name}_gradcam_head")
    except ValueError as exc:
        problem = f"layer {layer.name!r} is bypassed by later layers; Grad-CAM needs a layer that they all follow"
        raise ValueError(problem) from exc
    return probe, head, last if softmax else None


def grad_cam(
    model: keras.Model, grid: np.ndarray, *, class_index: int | None = None, layer: str | None = None
) -> GradCam:
    """Grad-CAM of one occupancy grid (H, W, Z) for ``class_index`` (default: the predicted class)."""
    grid = np.asarray(grid, dtype=np.float32)
    expected = _spatial(model.inputs[0].shape)
    if grid.shape != expected:
        raise ValueError(f"grid of shape {grid.shape} for a model that takes {expected}")
    chosen = feature_layer(model, layer)
    probe, head, dense = _split(model, chosen)
    features, probabilities = probe.predict_on_batch(grid[None, ..., None])
    probabilities = np.asarray(probabilities, dtype=np.float64)[0]
    index = int(np.argmax(probabilities)) if class_index is None else int(class_index)
    if not 0 <= index < probabilities.shape[-1]:
        raise ValueError(f"class index {index} out of range for {probabilities.shape[-1]} classes")

    def class_score(feature_tensor: object) -> object:
        scores = ops.cast(head(feature_tensor, training=False), "float32")
        if dense is not None:  # the logit, from the softmax layer's input
            scores = ops.matmul(scores, ops.cast(dense.kernel, "float32"))
            scores = scores + ops.cast(dense.bias, "float32") if dense.use_bias else scores
        return ops.sum(scores[:, index])

    _, gradients = value_and_gradient(class_score, np.asarray(features))
    if gradients is None:
        raise ValueError(f"the class score does not depend on layer {chosen.name!r}")
    features = np.asarray(features, dtype=np.float32)
    weights = np.mean(np.asarray(gradients, dtype=np.float32), axis=(1, 2, 3))  # (1, C)
    cam = np.maximum(np.sum(features * weights[:, None, None, None, :], axis=-1), 0.0)[0]
    mapping = feature_grid_mapping(model, chosen)
    coords = [(np.arange(n) - start) / step for n, (start, step) in zip(grid.shape, mapping, strict=True)]
    heat = resample_axes(cam, coords)
    peak = float(heat.max())
    heat = heat / peak if peak > 0 and math.isfinite(peak) else np.zeros_like(heat)
    return GradCam(heat.astype(np.float32), index, probabilities, chosen.name)
