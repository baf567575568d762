"""Calibrate a trained classifier's domain (see :mod:`voxelstudio.ml.classifier_domain`) on its validation data and
store it in the model file's metadata, so that classifying later can say when a volume is unlike its classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.progress import Progress, ReportFn, null_report


def add_extra_metadata(path: Path, extra: dict[str, Any]) -> None:
    """Rewrite the classifier at ``path`` (atomically) with ``extra`` merged into its ``extra`` metadata."""
    from voxelstudio.ml.classifiers import load_classifier, save_classifier

    loaded = load_classifier(path)
    merged = {**loaded.metadata.get("extra", {}), **extra}
    save_classifier(loaded.model, path, classes=loaded.classes, train_config=loaded.train_config, extra=merged,
                    pose_version=loaded.pose_version)  # fmt: skip


def orientation(loaded: Any) -> str:
    """How a loaded classifier's objects are posed: "upright" (voting turns about z) or "any" (principal pose,
    flips); "upright" for files from before the choice existed."""
    return loaded.config.orientation if loaded.config is not None else "upright"


def pose_options(loaded: Any) -> dict[str, Any]:
    """How to present grids to a loaded classifier: its orientation and its pose version (used for posed grids)."""
    return {"orientation": orientation(loaded), "pose_version": loaded.pose_version}


def store_domain(
    path: Path,
    val_grids: np.ndarray,
    grids: np.ndarray,
    rotations: int,
    report: ReportFn = null_report,
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Calibrate the domain of the classifier at ``path`` on ``val_grids`` (voting over ``rotations``) and the data
    set's ``grids``, store it in the file (with ``extra`` metadata, in the same rewrite) and return it (as stored)."""
    from voxelstudio.ml.classifier_domain import calibrate_domain
    from voxelstudio.ml.classifiers import load_classifier, predict_probabilities

    report(Progress(0, None, "measuring the model's domain on the validation grids"))
    loaded = load_classifier(path)
    probabilities = predict_probabilities(loaded.model, val_grids, rotations=rotations, **pose_options(loaded))
    domain = {**calibrate_domain(probabilities, grids).to_dict(), "rotations": int(rotations),
              "validation_grids": len(val_grids)}  # fmt: skip
    add_extra_metadata(path, {**(extra or {}), "domain": domain})
    return domain
