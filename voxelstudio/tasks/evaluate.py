"""Compare a prediction (and optionally the raw scan) with its target: one dictionary of metrics per volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voxelstudio.core.progress import Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume, is_constant
from voxelstudio.io import load_volume
from voxelstudio.metrics import evaluate_pair


def _label(role: str, volume: Volume) -> str:
    return f"{role} {volume.label!r}"


def _check_same_shape(volume: Volume, role: str, target: Volume) -> None:
    if volume.shape != target.shape:
        raise ValueError(
            f"{_label(role, volume)} has shape {volume.shape} but {_label('target', target)} has shape "
            f"{target.shape}; they must match voxel for voxel"
        )


def _scored(pred: Volume, target: Volume, spacing: tuple[float, float, float] | None) -> dict[str, Any]:
    """:func:`evaluate_pair`, with the detection scores a zero count leaves undefined as None (shown as n/a): no
    bead in the target, no recall or F1; none found, no precision. The metrics' convention (1.0 for nothing to find
    and nothing found, which suits averages) would read here as a perfect score on a volume without beads."""
    row = evaluate_pair(pred.data, target.data, spacing)
    if row["n_target"] == 0:
        row["recall"] = row["f1"] = None
    if row["n_pred"] == 0:
        row["precision"] = None
    return row


def evaluate_volumes(
    pred: Volume, target: Volume, raw: Volume | None = None, *, report: ReportFn = null_report
) -> dict[str, Any]:
    """Metrics of ``pred`` (and of ``raw``, when given, as the baseline) against ``target``.

    Returns ``{"pred": {...}, "raw": {...} (only with raw), "names": {...}, "spacing": [y, x, z] | None,
    "units": "um" | "voxels"}``; each row is :func:`voxelstudio.metrics.evaluate_pair`'s dictionary, undefined
    detection scores None (:func:`_scored`). FWHM values are in µm when the target's voxel size is known, else in
    voxels. ``report`` hears of each volume scored (minutes for a large pair).
    """
    _check_same_shape(pred, "prediction", target)
    if raw is not None:
        _check_same_shape(raw, "raw", target)
    if min(target.shape) < 3:
        raise ValueError(
            f"{_label('target', target)} has shape {target.shape}: too small to compare (SSIM needs at least 3 "
            "voxels along every axis)"
        )
    if is_constant(target.data):
        raise ValueError(
            f"{_label('target', target)} is constant ({float(target.data.min()):g} everywhere): there is nothing to "
            "compare with (PSNR and SSIM scale by the target's range)"
        )
    spacing = target.known_spacing
    steps = 1 if raw is None else 2
    report(Progress(0, steps, "scoring the prediction"))
    result: dict[str, Any] = {
        "names": {"pred": pred.name, "target": target.name},
        "spacing": None if spacing is None else list(spacing),
        "units": "voxels" if spacing is None else "um",
        "pred": _scored(pred, target, spacing),
    }
    if raw is not None:
        report(Progress(1, steps, "scoring the raw scan"))
        result["names"]["raw"] = raw.name
        result["raw"] = _scored(raw, target, spacing)
    report(Progress(steps, steps, "scored"))
    return result


def evaluate_files(
    pred_path: str | Path,
    target_path: str | Path,
    raw_path: str | Path | None = None,
    *,
    report: ReportFn = null_report,
) -> dict[str, Any]:
    """:func:`evaluate_volumes` on volume files, with their paths under ``"files"``."""
    paths = {"pred": pred_path, "target": target_path}
    if raw_path is not None:
        paths["raw"] = raw_path
    volumes = {role: load_volume(path) for role, path in paths.items()}  # seconds; the scoring takes minutes
    result = evaluate_volumes(volumes["pred"], volumes["target"], volumes.get("raw"), report=report)
    result["files"] = {role: str(path) for role, path in paths.items()}
    return result
