"""All metrics of a prediction against its target in one flat dictionary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from voxelstudio.metrics.beads import assign_beads, detection_scores, find_beads, matching_frame
from voxelstudio.metrics.fwhm import bead_fwhm
from voxelstudio.metrics.image import nrmse, psnr, ssim


def evaluate_pair(
    pred: np.ndarray,
    target: np.ndarray,
    spacing: Sequence[float] | None = None,
    *,
    max_distance: float | None = None,
) -> dict[str, Any]:
    """Image similarity, bead detection and bead widths of ``pred`` compared with ``target``.

    Keys: ``psnr``, ``ssim``, ``nrmse`` (after an affine fit, see :mod:`voxelstudio.metrics.image`); ``precision``,
    ``recall``, ``f1``, ``n_pred``, ``n_target`` (bead matching, see :mod:`voxelstudio.metrics.beads`);
    ``fwhm_lateral``, ``fwhm_axial``, ``fwhm_ratio``, ``fwhm_n`` for the predicted beads that match a target bead
    (isolated from every predicted bead, false ones included, whose light would widen them);
    and ``target_fwhm_lateral``, ``target_fwhm_axial``, ``target_fwhm_ratio``, ``target_fwhm_n`` for the target's
    own beads, so the elongation left in ``pred`` can be read against the target's. Widths are in voxels, or in
    the units of ``spacing`` (y, x, z) when given; a width is None when no bead could be measured.
    """
    pred = np.asarray(pred, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    found, truth = find_beads(pred), find_beads(target)
    scale, limit = matching_frame(spacing, max_distance)
    found_idx, _ = assign_beads(found * scale, truth * scale, limit)
    result: dict[str, Any] = {"psnr": psnr(pred, target), "ssim": ssim(pred, target), "nrmse": nrmse(pred, target)}
    result.update(detection_scores(len(found_idx), len(found), len(truth)))
    for prefix, widths in (
        ("fwhm", bead_fwhm(pred, spacing, peaks=found[found_idx], neighbours=found)),
        ("target_fwhm", bead_fwhm(target, spacing, peaks=truth)),
    ):
        result.update({f"{prefix}_{key}": value for key, value in widths.items()})
    return result
