"""Bead detection and matching: how many beads a prediction finds where the target has them.

Detection works on hazy raw scans as well as clean targets:

1. light Gaussian smoothing (``smooth_sigma`` voxels) tames shot noise;
2. the smooth background (offset, haze, ramps) is the median of blocks several beads wide (``background_block``),
   interpolated linearly between block centres; subtracting it leaves the beads on a flat zero floor;
3. local maxima at least ``min_distance`` voxels apart are kept when they exceed a threshold relative to the robust
   range of that background-free volume (its median to its 99.99th percentile), and also ``min_snr`` robust noise
   deviations (1.4826 x median absolute deviation) above the median, so pure noise yields few or no beads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from skimage.feature import peak_local_max

DEFAULT_SMOOTH_SIGMA = 1.0
DEFAULT_BACKGROUND_BLOCK = (16, 16, 8)
"""Block size (y, x, z) of the background estimate; blocks should be several beads wide."""
DEFAULT_MATCH_DISTANCE = 3.0
"""Largest distance between a found bead and its target bead, in voxels of the finest axis."""
MIN_MATCH_VOXELS = 1.5
"""...and along each axis at least this many of its own voxels: a z step coarser than half the default distance
still matches a bead one plane off."""

_ROBUST_HIGH_PERCENTILE = 99.99
_MAD_TO_SIGMA = 1.4826


def _block_edges(length: int, block: int) -> np.ndarray:
    count = max(1, round(length / max(1, int(block))))
    return np.linspace(0, length, count + 1).round().astype(np.int64)


def _linear_along(values: np.ndarray, centres: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Resample ``values`` from ``centres`` to ``0..length-1`` along ``axis``, extrapolating the end segments."""
    if len(centres) == 1:
        return np.repeat(values, length, axis=axis)
    positions = np.arange(length, dtype=np.float64)
    lower = np.clip(np.searchsorted(centres, positions) - 1, 0, len(centres) - 2)
    weight = (positions - centres[lower]) / (centres[lower + 1] - centres[lower])
    shape = [1, 1, 1]
    shape[axis] = length
    weight = weight.reshape(shape)
    return (1 - weight) * np.take(values, lower, axis=axis) + weight * np.take(values, lower + 1, axis=axis)


def smooth_background(volume: np.ndarray, block: Sequence[int] = DEFAULT_BACKGROUND_BLOCK) -> np.ndarray:
    """The smooth background of a sparse bead volume: block medians, interpolated (and extrapolated) linearly.

    Beads fill a small part of each block, so the median is the local background; linear interpolation between
    block centres reproduces offsets and linear ramps exactly.
    """
    data = np.asarray(volume, dtype=np.float32)
    edges = [_block_edges(n, b) for n, b in zip(data.shape, block, strict=True)]
    medians = np.empty([len(e) - 1 for e in edges], dtype=np.float64)
    for index in np.ndindex(medians.shape):
        box = tuple(slice(e[i], e[i + 1]) for e, i in zip(edges, index, strict=True))
        medians[index] = np.median(data[box])
    background = medians
    for axis, (e, n) in enumerate(zip(edges, data.shape, strict=True)):
        background = _linear_along(background, (e[:-1] + e[1:] - 1) / 2, n, axis)
    return background.astype(np.float32)


def smoothed_and_background(
    volume: np.ndarray,
    *,
    smooth_sigma: float = DEFAULT_SMOOTH_SIGMA,
    background_block: Sequence[int] = DEFAULT_BACKGROUND_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """The lightly smoothed volume and its smooth background (see :func:`smooth_background`)."""
    data = np.asarray(volume, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"bead metrics need a 3-D volume, got shape {data.shape}")
    smoothed = gaussian_filter(data, smooth_sigma, mode="nearest") if smooth_sigma > 0 else data
    return smoothed, smooth_background(smoothed, background_block)


def find_beads(
    volume: np.ndarray,
    *,
    threshold_rel: float = 0.2,
    min_distance: int = 2,
    min_snr: float = 6.0,
    smooth_sigma: float = DEFAULT_SMOOTH_SIGMA,
    background_block: Sequence[int] = DEFAULT_BACKGROUND_BLOCK,
) -> np.ndarray:
    """Voxel coordinates (N, 3) int of the beads in ``volume``, brightest first (see the module docstring)."""
    if not 0.0 <= threshold_rel < 1.0:
        raise ValueError(f"threshold_rel must be in [0, 1), got {threshold_rel}")
    smoothed, background = smoothed_and_background(volume, smooth_sigma=smooth_sigma, background_block=background_block)
    signal = smoothed - background
    if not np.isfinite(signal).all():
        raise ValueError("cannot find beads in a volume holding NaN or infinite values")
    low = float(np.median(signal))
    high = float(np.percentile(signal, _ROBUST_HIGH_PERCENTILE))
    if high <= low:
        return np.empty((0, 3), dtype=np.int64)
    noise = _MAD_TO_SIGMA * float(np.median(np.abs(signal - low)))
    threshold = max(low + threshold_rel * (high - low), low + min_snr * noise)
    peaks = peak_local_max(
        signal, min_distance=max(1, int(min_distance)), threshold_abs=threshold, exclude_border=False
    )
    return np.asarray(peaks, dtype=np.int64).reshape(-1, 3)


def assign_beads(found: np.ndarray, truth: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (found_idx, truth_idx) of a one-to-one matching within ``max_distance``.

    Hungarian assignment (``linear_sum_assignment``) on the distance matrix, with pairs farther than
    ``max_distance`` priced above any sum of allowed distances: it finds the most matches, then the closest.
    """
    found = np.asarray(found, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if len(found) == 0 or len(truth) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    distances = cdist(found.reshape(len(found), -1), truth.reshape(len(truth), -1))
    too_far = max_distance * (min(distances.shape) + 1) + 1.0
    rows, cols = linear_sum_assignment(np.where(distances <= max_distance, distances, too_far))
    within = distances[rows, cols] <= max_distance
    return rows[within].astype(np.int64), cols[within].astype(np.int64)


def match_beads(found: np.ndarray, truth: np.ndarray, max_distance: float) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of a one-to-one matching within ``max_distance``."""
    found_idx, _ = assign_beads(found, truth, max_distance)
    tp = len(found_idx)
    return tp, len(found) - tp, len(truth) - tp


def detection_scores(tp: int, n_pred: int, n_target: int) -> dict[str, float | int]:
    """Precision, recall and F1 from counts. With nothing to find and nothing found the scores are 1.0."""
    precision = tp / n_pred if n_pred else float(n_target == 0)
    recall = tp / n_target if n_target else float(n_pred == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "n_pred": int(n_pred), "n_target": int(n_target)}


def matching_frame(spacing: Sequence[float] | None, max_distance: float | None = None) -> tuple[np.ndarray, float]:
    """(per-axis scale of voxel coordinates, limit) for matching beads: ``max_distance`` in the units of
    ``spacing`` (voxels when None), the same along every axis; by default :data:`DEFAULT_MATCH_DISTANCE` voxels of
    the finest axis but at least :data:`MIN_MATCH_VOXELS` of each axis's own (an ellipsoid, limit 1)."""
    step = np.ones(3) if spacing is None else np.asarray(spacing, dtype=np.float64)
    if max_distance is not None:
        return step, float(max_distance)
    tolerance = np.maximum(DEFAULT_MATCH_DISTANCE * step.min(), MIN_MATCH_VOXELS * step)
    return step / tolerance, 1.0


def bead_detection_scores(
    pred: np.ndarray,
    target: np.ndarray,
    spacing: Sequence[float] | None = None,
    *,
    max_distance: float | None = None,
) -> dict[str, float | int]:
    """How well the beads found in ``pred`` match those found in ``target``.

    Distances are in voxels, or in the units of ``spacing`` (y, x, z) when given; without ``max_distance`` the
    tolerance of :func:`matching_frame`. Returns precision, recall, f1, n_pred and n_target.
    """
    found, truth = find_beads(pred), find_beads(target)
    scale, limit = matching_frame(spacing, max_distance)
    tp, _, _ = match_beads(found * scale, truth * scale, limit)  # find_beads: (n, 3) voxel indices
    return detection_scores(tp, len(found), len(truth))
