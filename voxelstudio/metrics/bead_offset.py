"""Where a prediction puts its beads relative to the target's: a systematic sub-voxel offset.

A denoiser trained on beads whose point-spread function has a long tail on one side can learn to place each bead a
fraction of a plane towards that tail. Each bead the prediction and the target share (matched as in
:func:`~voxelstudio.metrics.beads.bead_detection_scores`) is registered by phase correlation of the same box around
it in both (``skimage.registration.phase_cross_correlation``, sub-voxel); the median over the beads is the offset.
Beads whose box would cross a face are left out: a bead cut by the face is not where its visible part is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.registration import phase_cross_correlation

from voxelstudio.metrics.beads import assign_beads, find_beads, matching_frame

BOX_HALF = (4, 4, 4)
"""Half-size (y, x, z voxels) of the box registered around each bead."""
UPSAMPLE = 20
"""Sub-voxel precision of the registration: 1/20 voxel."""


def bead_shifts(
    pred: np.ndarray, target: np.ndarray, spacing: Sequence[float] | None = None, *, half: Sequence[int] = BOX_HALF
) -> np.ndarray:
    """(N, 3) position of each bead of ``pred`` minus that of its ``target`` bead, in voxels (y, x, z), for the
    matched beads whose box lies inside the volume."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(f"need two 3-D volumes of one shape, got {pred.shape} and {target.shape}")
    found, truth = find_beads(pred), find_beads(target)
    scale, limit = matching_frame(spacing)
    _, truth_idx = assign_beads(found * scale, truth * scale, limit)
    half_ = np.asarray(half, dtype=np.intp)
    shifts = []
    for centre in truth[truth_idx]:
        if np.any(centre < half_) or np.any(centre + half_ >= pred.shape):
            continue
        box = tuple(slice(int(c - h), int(c + h + 1)) for c, h in zip(centre, half_, strict=True))
        moved, _, _ = phase_cross_correlation(target[box], pred[box], upsample_factor=UPSAMPLE, normalization=None)
        shifts.append(-np.asarray(moved, dtype=np.float64))  # what moves pred onto target, negated
    return np.asarray(shifts, dtype=np.float64).reshape(-1, 3)


def median_offset(shifts: np.ndarray) -> np.ndarray:
    """The median of :func:`bead_shifts` per axis (zeros for no beads)."""
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 3)
    return np.median(shifts, axis=0) if len(shifts) else np.zeros(3)
