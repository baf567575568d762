"""Using voxel classifiers as plain tasks: the bundled model, evaluation on a class-per-folder data set, classifying
volumes (with rotation voting, the model's domain check and a Grad-CAM heat map). Qt-free; TensorFlow is imported
only inside the functions that need it. Training lives in :mod:`voxelstudio.tasks.classify_train`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxelstudio.core.errors import ModelError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.resources import resource_path
from voxelstudio.core.volume import Volume
from voxelstudio.tasks.classifier_domain import orientation, pose_options
from voxelstudio.tasks.datasets import fit_grid, load_class_folder

if TYPE_CHECKING:
    from voxelstudio.ml.classifier_domain import Domain
    from voxelstudio.ml.classifiers import LoadedClassifier


@dataclass(frozen=True)
class ClassPrediction:
    """Class probabilities of one volume, with the ``top`` classes first; ``out_of_domain`` says why the volume is
    unlike the model's classes (None when it is not: see :mod:`voxelstudio.ml.classifier_domain`)."""

    name: str
    top: list[tuple[str, float]]
    probabilities: dict[str, float]
    out_of_domain: str | None = None


def default_classifier_path() -> Path:
    """The bundled classifier trained on the procedural shapes."""
    return resource_path("models", "classifier_default.keras")


def model_domain(loaded: LoadedClassifier) -> Domain:
    """The domain stored in ``loaded``'s metadata, else the documented fallback."""
    from voxelstudio.ml.classifier_domain import Domain

    return Domain.from_metadata(loaded.metadata.get("extra", {}), len(loaded.classes))


def load_trained_classifier(model_path: str | Path | None = None, *, trusted: bool = False) -> LoadedClassifier:
    """Load ``model_path`` (default: the bundled classifier)."""
    from voxelstudio.ml.classifiers import load_classifier

    return load_classifier(model_path or default_classifier_path(), trusted=trusted)


def _vote_rotations(loaded: LoadedClassifier, rotations: int | None, path: Path, n_grids: int = 1) -> int:
    """``rotations``, or by default the most rotations (up to the model's own) that classify ``n_grids`` within
    EVALUATION_TARGET_S at the model's measured cost on this device; at most the 8 flips under ``any``."""
    from voxelstudio.ml.classifier_inference import choose_rotations, seconds_per_sample, view_count

    height, width, _ = loaded.input_shape
    preferred = loaded.train_config.voting_views if loaded.train_config else 12
    if rotations is None and height == width and preferred > 1:
        cost = seconds_per_sample(loaded.model, loaded.input_shape) if n_grids > 1 else 0.0
        rotations = choose_rotations(cost, n_grids, preferred=preferred)
    count = view_count(rotations if rotations is not None else 1, orientation(loaded))
    if count > 1 and height != width and orientation(loaded) == "upright":
        raise ModelError(path, f"rotation voting needs a square (H, W) input, the model takes {loaded.input_shape}")
    return count


def classification_report(labels: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """accuracy, per-class accuracy (classes present in ``labels``), confusion (rows true, columns predicted)."""
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (np.asarray(labels), np.asarray(predicted)), 1)
    totals = confusion.sum(axis=1)
    per_class = {classes[i]: float(confusion[i, i] / totals[i]) for i in range(n) if totals[i]}
    accuracy = float(np.trace(confusion) / max(confusion.sum(), 1))
    return {"accuracy": accuracy, "per_class": per_class, "confusion": confusion.tolist(), "classes": list(classes)}


def evaluate_classifier(
    folder: str | Path,
    *,
    model_path: str | Path | None = None,
    rotations: int | None = None,
    trusted: bool = False,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix of a model on a class-per-folder data set (grids are
    resampled to the model's input; folder names must be among the model's classes)."""
    from voxelstudio.ml.classifiers import predict_probabilities

    path = Path(model_path or default_classifier_path())
    loaded = load_trained_classifier(path, trusted=trusted)
    dataset = load_class_folder(folder, grid_shape=loaded.input_shape, classes=loaded.classes, report=report,
                                cancel=cancel)  # fmt: skip
    count = _vote_rotations(loaded, rotations, path, len(dataset))
    report(Progress(0, len(dataset), f"classifying with {count} rotation(s)"))
    probabilities = predict_probabilities(loaded.model, dataset.grids, rotations=count, **pose_options(loaded),
                                          report=report, cancel=cancel)  # fmt: skip
    result = classification_report(dataset.labels, probabilities.argmax(axis=1), loaded.classes)
    return {**result, "count": len(dataset), "rotations": count, "model": str(path)}


def classify_volumes(
    volumes: Sequence[Volume],
    *,
    model_path: str | Path | None = None,
    top: int = 3,
    rotations: int | None = None,
    trusted: bool = False,
    report: ReportFn = null_report,
) -> list[ClassPrediction]:
    """Top classes of each volume (resampled to the model's input, averaged over rotations about z)."""
    from voxelstudio.ml.classifiers import predict_probabilities

    path = Path(model_path or default_classifier_path())
    loaded = load_trained_classifier(path, trusted=trusted)
    count = _vote_rotations(loaded, rotations, path, len(volumes))
    fitted = [fit_grid(v.data, loaded.input_shape, path=v.source or v.name) for v in volumes]
    resampled = [v.label for v, (_, changed) in zip(volumes, fitted, strict=True) if changed]
    if resampled:
        target = "x".join(str(n) for n in loaded.input_shape)
        warnings.warn(f"resampled to the model's {target} input: {', '.join(resampled)}", stacklevel=2)
    grids = np.stack([grid for grid, _ in fitted])
    probabilities = predict_probabilities(loaded.model, grids, rotations=count, **pose_options(loaded),
                                          report=report)  # fmt: skip
    domain = model_domain(loaded)
    results = []
    for volume, row, grid in zip(volumes, probabilities, grids, strict=True):
        order = np.argsort(-row, kind="stable")[: max(top, 1)]
        results.append(
            ClassPrediction(
                volume.label,
                [(loaded.classes[i], float(row[i])) for i in order],
                {name: float(p) for name, p in zip(loaded.classes, row, strict=True)},
                domain.check(row, grid),
            )
        )
    return results


@dataclass(frozen=True)
class VolumeClassification:
    """Class probabilities of one volume (in ``classes`` order) and the Grad-CAM heat map of the predicted class
    over the volume's voxels, in [0, 1]. ``grid`` is the occupancy grid the model saw; ``out_of_domain`` says why
    the volume is unlike the model's classes (None when it is not)."""

    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    predicted: str
    heatmap: Volume
    grid: np.ndarray
    rotations: int
    model: str
    layer: str
    out_of_domain: str | None = None


def classify_with_heatmap(
    volume: Volume | np.ndarray,
    model_path: str | Path | None = None,
    *,
    rotations: int | None = None,
    trusted: bool = False,
) -> VolumeClassification:
    """Classify any volume (a microscope volume too: see :func:`~voxelstudio.tasks.volume_grid.place_volume`) with
    rotation voting, and explain the predicted class with Grad-CAM of the unrotated grid."""
    from voxelstudio.ml.classifiers import predict_probabilities
    from voxelstudio.ml.gradcam import grad_cam
    from voxelstudio.ml.voxel_pose import principal_pose
    from voxelstudio.tasks.volume_grid import place_volume

    volume = volume if isinstance(volume, Volume) else Volume(np.asarray(volume), name="array")
    path = Path(model_path or default_classifier_path())
    loaded = load_trained_classifier(path, trusted=trusted)
    count = _vote_rotations(loaded, rotations, path)
    placed = place_volume(volume, loaded.input_shape)
    probabilities = predict_probabilities(loaded.model, placed.grid[None], rotations=count,
                                          **pose_options(loaded))[0]  # fmt: skip
    predicted = int(np.argmax(probabilities))
    if orientation(loaded) == "any":  # explain the posed grid the model saw, then map the map back
        pose = principal_pose(placed.grid, loaded.pose_version)
        cam = grad_cam(loaded.model, pose.apply(placed.grid), class_index=predicted)
        cam_map = pose.invert(np.asarray(cam.heatmap))
    else:
        cam = grad_cam(loaded.model, placed.grid, class_index=predicted)
        cam_map = cam.heatmap
    heat = placed.to_volume(cam_map, volume.shape)
    name = f"for {loaded.classes[predicted]}"
    heatmap = volume.replace(data=heat, name=name, source=None, metadata={"gradcam": loaded.classes[predicted]})
    return VolumeClassification(
        loaded.classes, tuple(float(p) for p in probabilities), loaded.classes[predicted], heatmap, placed.grid,
        count, str(path), cam.layer, model_domain(loaded).check(probabilities, placed.grid),
    )  # fmt: skip
