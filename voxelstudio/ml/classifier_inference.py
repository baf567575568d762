"""Classifier prediction that fits the machine: all rotations of many grids in one forward pass, progress with an
ETA and cancel, and a default rotation count chosen from the model's measured cost. Keras and numpy only.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.ml.voxel_augment import rotate_vertical_batch
from voxelstudio.ml.voxel_pose import FLIPS, POSE_VERSION, flip_views, to_principal_pose

PREDICT_BATCH = 96
"""Samples (grids x rotations) per forward pass."""
ROTATION_CHOICES = (12, 8, 6, 4, 3, 2, 1)
EVALUATION_TARGET_S = 60.0
"""Default rotations are the most (up to the model's own) whose predicted time stays within this."""


def rotated_stack(grids: np.ndarray, rotations: int) -> np.ndarray:
    """(N * rotations, H, W, Z) float32, grid-major: grid 0 at 0, 360/r, ... degrees, then grid 1, ..."""
    grids = np.asarray(grids)
    if rotations <= 1:
        return grids.astype(np.float32)
    turned = [rotate_vertical_batch(grids, 360.0 * k / rotations) for k in range(rotations)]
    return np.stack(turned, axis=1).reshape(-1, *grids.shape[1:]).astype(np.float32)


def view_count(rotations: int, orientation: str = "upright") -> int:
    """The views voting averages: ``rotations`` about z, or under ``any`` at most the 8 flips."""
    return max(min(int(rotations), len(FLIPS)) if orientation == "any" else int(rotations), 1)


def _forward(model: keras.Model, batch: np.ndarray, size: int) -> np.ndarray:
    """Probabilities of ``batch`` padded to ``size`` samples (one traced shape for every pass)."""
    count = len(batch)
    if count < size:
        batch = np.concatenate([batch, np.zeros((size - count, *batch.shape[1:]), batch.dtype)])
    return np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(batch[..., None])))[:count]


def predict_probabilities(
    model: keras.Model,
    grids: np.ndarray,
    *,
    rotations: int = 1,
    orientation: str = "upright",
    pose_version: int = POSE_VERSION,
    batch_size: int = PREDICT_BATCH,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Class probabilities (N, C) of occupancy grids (N, H, W, Z), averaged over ``rotations`` about z; under the
    model's ``orientation="any"`` each grid is put in its principal pose first (as ``pose_version``, the model's,
    poses it) and the views are its first :func:`view_count` flips.

    Each forward pass holds all views of ``max(1, batch_size // views)`` grids. Reports
    Progress(grids done, N, "classifying", {rotations, eta_s}) after each pass; ``cancel`` stops between passes.
    """
    grids = np.asarray(grids)
    n_classes = int(model.outputs[0].shape[-1])
    rotations = view_count(rotations, orientation)
    posed = orientation == "any"
    views = (lambda part: flip_views(to_principal_pose(part, pose_version), rotations)) if posed else None
    if len(grids) == 0:
        return np.zeros((0, n_classes))
    per_pass = max(1, batch_size // rotations)
    size = min(per_pass, len(grids)) * rotations
    out = np.zeros((len(grids), n_classes))
    started = time.monotonic()
    for start in range(0, len(grids), per_pass):
        if cancel is not None:
            cancel.raise_if_cancelled("classifying")
        part = grids[start : start + per_pass]
        stack = views(part) if views is not None else rotated_stack(part, rotations)
        probabilities = _forward(model, stack, size).astype(np.float64)
        out[start : start + len(part)] = probabilities.reshape(len(part), rotations, n_classes).mean(axis=1)
        done = start + len(part)
        elapsed = time.monotonic() - started
        eta = elapsed / done * (len(grids) - done)
        report(Progress(done, len(grids), "classifying", {"rotations": rotations, "eta_s": eta}))
    return out


def seconds_per_sample(model: keras.Model, grid_shape: tuple[int, int, int], batch_size: int = PREDICT_BATCH) -> float:
    """Measured seconds of one forward pass per sample (after a warm-up pass that traces the model)."""
    batch = np.zeros((batch_size, *grid_shape), np.float32)
    _forward(model, batch, batch_size)
    started = time.perf_counter()
    _forward(model, batch, batch_size)
    return (time.perf_counter() - started) / batch_size


def choose_rotations(
    per_sample_s: float, n_grids: int, *, preferred: int = 12, target_s: float = EVALUATION_TARGET_S
) -> int:
    """The most rotations (a divisor of ``preferred``, the model's training rotations, so that every voting angle
    is one training used) whose predicted time for ``n_grids`` stays within ``target_s``; at least 1."""
    preferred = max(int(preferred), 1)
    for count in (c for c in ROTATION_CHOICES if preferred % c == 0):
        if count == 1 or (math.isfinite(per_sample_s) and n_grids * count * per_sample_s <= target_s):
            return count
    return 1
