"""Image similarity after an affine fit of the prediction to the target (scale- and offset-invariant, as CSBDeep).

A network trained on normalised data predicts in arbitrary units, so each metric first maps the prediction onto the
target with the least-squares line ``a * pred + b`` and then compares in the target's units, with the target's own
data range (max - min) as the peak value.

Constant inputs never give NaN:

- a constant prediction is fitted by the target's mean (``a = 0``), so the scores are those of a flat guess;
- a constant target is reproduced exactly by any prediction (``a = 0, b = target value``): PSNR is ``inf``,
  SSIM 1.0 and NRMSE 0.0.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

SSIM_MAX_WINDOW = 7
"""SSIM's usual window (7 voxels per axis); a smaller odd window is used along axes too short for it."""


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    if pred.size == 0:
        raise ValueError("cannot compare empty arrays")
    if not (np.isfinite(pred).all() and np.isfinite(target).all()):
        raise ValueError("cannot compare arrays holding NaN or infinite values")
    return pred, target


def affine_fit(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``a * pred + b`` with ``a, b`` minimising the squared error to ``target`` (float64)."""
    pred, target = _pair(pred, target)
    pred_centred = pred - pred.mean()
    variance = float(np.sum(pred_centred * pred_centred))
    scale = float(np.sum(pred_centred * (target - target.mean()))) / variance if variance > 0 else 0.0
    return scale * pred_centred + target.mean()


def _fitted_and_range(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    fitted = affine_fit(pred, target)
    target = np.asarray(target, dtype=np.float64)
    return fitted, target, float(target.max() - target.min())


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of the affinely fitted prediction; ``inf`` for an exact fit."""
    fitted, target, data_range = _fitted_and_range(pred, target)
    if data_range == 0 or np.array_equal(fitted, target):
        return math.inf
    return float(peak_signal_noise_ratio(target, fitted, data_range=data_range))


def nrmse(pred: np.ndarray, target: np.ndarray) -> float:
    """Root-mean-square error of the affinely fitted prediction divided by the target's range; 0.0 for an exact fit."""
    fitted, target, data_range = _fitted_and_range(pred, target)
    if data_range == 0 or np.array_equal(fitted, target):
        return 0.0
    return float(normalized_root_mse(target, fitted, normalization="min-max"))


def ssim_window(shape: tuple[int, ...]) -> int:
    """The SSIM window: 7, or the largest odd size that fits the shortest axis (e.g. 5 for a 5-deep stack).

    Volumes here are often thin in z (16-32 slices), and skimage's window is cubic, so the shortest axis decides.
    """
    shortest = min(shape)
    if shortest < 3:
        raise ValueError(f"SSIM needs at least 3 voxels along every axis, got shape {tuple(shape)}")
    window = min(SSIM_MAX_WINDOW, shortest)
    return window if window % 2 == 1 else window - 1


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean structural similarity of the affinely fitted prediction (uniform window, see :func:`ssim_window`)."""
    fitted, target, data_range = _fitted_and_range(pred, target)
    window = ssim_window(target.shape)
    if data_range == 0 or np.array_equal(fitted, target):
        return 1.0
    return float(structural_similarity(target, fitted, win_size=window, data_range=data_range))
