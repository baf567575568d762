"""Training losses for (N, H, W, Z, C) volumes in [0, 1]: mse, mae, imbalanced, ssim and mae+ssim.

All are Keras ``Loss`` objects registered under the ``voxelstudio`` package, so a compiled model saves and loads.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from voxelstudio.ml.config import LossConfig


def get_loss(cfg: LossConfig) -> keras.losses.Loss:
    """The loss that ``cfg.name`` names, with ``cfg``'s parameters."""
    cfg.validate()
    if cfg.name == "mse":
        return keras.losses.MeanSquaredError(name="mse")
    if cfg.name == "mae":
        return keras.losses.MeanAbsoluteError(name="mae")
    if cfg.name == "imbalanced":
        return ImbalancedLoss(threshold=cfg.threshold, weight=cfg.weight)
    if cfg.name == "ssim":
        return SSIMLoss()
    return MaeSsimLoss(mae_weight=cfg.mae_weight, ssim_weight=cfg.ssim_weight)


def _spatial_mean(x: Any) -> Any:
    """Mean over every axis but the batch axis: one value per sample."""
    return ops.mean(x, axis=tuple(range(1, len(x.shape))))


@keras.saving.register_keras_serializable(package="voxelstudio")
class ImbalancedLoss(keras.losses.Loss):
    """mean(w * |y - yhat|) with w = ``weight`` where the target y >= ``threshold``, else 1.

    Sparse bright beads on a dark background would otherwise be learned as all-dark (the original's finding). A
    weight below 1 does the opposite: a voxel is answered as bead only where it is one in more than 1 / (1 + weight)
    of the cases, so beads whose depth the data leave uncertain stay compact (adapt's fine-tuning uses 0.25).
    """

    def __init__(self, threshold: float = 0.1, weight: float = 1000.0, name: str = "imbalanced", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)
        self.weight = float(weight)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        w = ops.where(y_true >= self.threshold, self.weight, 1.0)
        return _spatial_mean(ops.cast(w, y_pred.dtype) * ops.abs(y_true - y_pred))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold, "weight": self.weight}


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-0.5 * (r / sigma) ** 2)
    return (g / g.sum()).astype(np.float32)


def _smooth(x: Any, window: np.ndarray) -> Any:
    """Separable Gaussian filter of (B, H, W, Z, 1) along the three spatial axes, zero-padded ('SAME')."""
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[axis] = window.size
        x = ops.conv(x, ops.cast(window.reshape(shape), x.dtype), strides=1, padding="same")
    return x


def ssim_map(y_true: Any, y_pred: Any, *, max_val: float = 1.0, size: int = 7, sigma: float = 1.5) -> Any:
    """Voxel-wise 3-D SSIM of two (B, H, W, Z, C) tensors, Gaussian-weighted; returns (B*C, H, W, Z, 1).

    Local statistics near the borders are weighted means over the part of the window inside the volume, so any
    size works, even a few z slices.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)

    def per_channel(v: Any) -> Any:  # (B, H, W, Z, C) -> (B*C, H, W, Z, 1)
        v = ops.transpose(v, [0, 4, 1, 2, 3])
        return ops.expand_dims(ops.reshape(v, [-1, *ops.shape(v)[2:]]), -1)

    a, b = per_channel(y_true), per_channel(y_pred)
    window = _gaussian_window(size, sigma)
    coverage = _smooth(ops.ones_like(a[:1]), window)

    def mean(v: Any) -> Any:
        return _smooth(v, window) / coverage

    mu_a, mu_b = mean(a), mean(b)
    var_a = mean(a * a) - mu_a * mu_a
    var_b = mean(b * b) - mu_b * mu_b
    cov = mean(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def _ssim_per_sample(y_true: Any, y_pred: Any, max_val: float) -> Any:
    ssim = ssim_map(y_true, y_pred, max_val=max_val)
    per_channel = ops.mean(ssim, axis=[1, 2, 3, 4])
    return ops.mean(ops.reshape(per_channel, [ops.shape(y_pred)[0], -1]), axis=1)


@keras.saving.register_keras_serializable(package="voxelstudio")
class SSIMLoss(keras.losses.Loss):
    """1 - mean 3-D SSIM (Gaussian window, sigma 1.5 voxels) for data in [0, ``max_val``]."""

    def __init__(self, max_val: float = 1.0, name: str = "ssim", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.max_val = float(max_val)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return 1.0 - _ssim_per_sample(y_true, y_pred, self.max_val)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_val": self.max_val}


@keras.saving.register_keras_serializable(package="voxelstudio")
class MaeSsimLoss(keras.losses.Loss):
    """``mae_weight`` * MAE + ``ssim_weight`` * (1 - SSIM): voxel accuracy plus local structure."""

    def __init__(
        self,
        mae_weight: float = 1.0,
        ssim_weight: float = 1.0,
        max_val: float = 1.0,
        name: str = "mae_ssim",
        **kwargs: Any,
    ):
        super().__init__(name=name, **kwargs)
        self.mae_weight = float(mae_weight)
        self.ssim_weight = float(ssim_weight)
        self.max_val = float(max_val)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        mae = _spatial_mean(ops.abs(y_true - y_pred))
        return self.mae_weight * mae + self.ssim_weight * (1.0 - _ssim_per_sample(y_true, y_pred, self.max_val))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        return {**config, "mae_weight": self.mae_weight, "ssim_weight": self.ssim_weight, "max_val": self.max_val}
