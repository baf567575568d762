"""The Qt-side model: the volumes on screen and how each was made, the models in use and the latest metrics.

Widgets subscribe to the change signals and hold no copies; only the controller and the job handlers write (always on
the GUI thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from voxelstudio.core.volume import SPACING_GIVEN, Spacing, Volume

ROLES = ("raw", "target", "prediction", "uncertainty", "gradcam")
ROLE_LABELS = {
    "raw": "Raw",
    "target": "Target",
    "prediction": "Predicted",
    "uncertainty": "Uncertainty",
    "gradcam": "Grad-CAM",
    "residual": "Residual (predicted − target)",
}
_DERIVED_FROM_RAW = ("prediction", "uncertainty", "gradcam")
_DERIVED_FROM_PREDICTION = ("uncertainty",)  # the spread of the test-time augmentations that made that prediction
_NOT_MEASURED = ("uncertainty", "gradcam")  # the metrics do not depend on these


class Document(QObject):
    """Raw, target, prediction, uncertainty and Grad-CAM volumes with their provenance (what made each one), the
    current denoiser and classifier, the metrics, and the running job.

    Loading a new raw volume drops the prediction, uncertainty and Grad-CAM made from the old one, and a new prediction
    the uncertainty of the old one; a volume or voxel-size change drops the metrics, which described the old volumes.
    A volume's provenance is set with it and goes with it.
    """

    volume_changed = Signal(str)
    model_changed = Signal(object)
    classifier_changed = Signal(object)  # Path, or None for the bundled classifier
    metrics_changed = Signal(object)
    job_changed = Signal(object)  # the running job's name, or None once none runs

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._volumes: dict[str, Volume | None] = dict.fromkeys(ROLES)
        self._made_by: dict[str, dict[str, Any]] = {}
        self._model_path: Path | None = None
        self._classifier_path: Path | None = None
        self._metrics: dict[str, Any] = {}
        self._residual: Volume | None = None
        self._running_job: str | None = None

    def volume(self, role: str) -> Volume | None:
        return self._volumes[_checked(role)]

    def volumes(self) -> dict[str, Volume]:
        """The loaded volumes by role."""
        return {role: v for role, v in self._volumes.items() if v is not None}

    def set_volume(self, role: str, volume: Volume | None, made_by: Mapping[str, Any] | None = None) -> None:
        """Show ``volume`` as ``role``; ``made_by`` records the job that made it (None: loaded from a file, or
        unknown)."""
        self._volumes[_checked(role)] = volume
        self._set_made_by(role, None if volume is None else made_by)
        self._residual = None
        self.volume_changed.emit(role)
        derived_roles = {"raw": _DERIVED_FROM_RAW, "prediction": _DERIVED_FROM_PREDICTION}.get(role, ())
        for derived in derived_roles:
            if self._volumes[derived] is not None:
                self._volumes[derived] = None
                self._made_by.pop(derived, None)
                self.volume_changed.emit(derived)
        if role not in _NOT_MEASURED:
            self.set_metrics({})

    def residual(self) -> Volume | None:
        """Prediction minus target, when both exist with the same shape (computed once per change)."""
        prediction, target = self._volumes["prediction"], self._volumes["target"]
        if prediction is None or target is None or prediction.shape != target.shape:
            return None
        if self._residual is None:
            self._residual = prediction.replace(
                data=np.subtract(prediction.data, target.data, dtype=np.float32), name=f"{prediction.name} − target"
            )
        return self._residual

    @property
    def spacing(self) -> Spacing | None:
        """The voxel spacing of the first loaded volume."""
        return next((v.spacing for v in self._volumes.values() if v is not None), None)

    def set_spacing(self, spacing: Spacing) -> None:
        """Give every loaded volume the voxel spacing ``(y, x, z)`` in micrometres; the metrics, whose bead widths
        were measured in the old one, are dropped."""
        changed = False
        for role, volume in self._volumes.items():
            if volume is not None and tuple(volume.spacing) != tuple(spacing):
                self._volumes[role] = volume.replace(spacing=spacing, metadata={SPACING_GIVEN: True})  # 1 µm is 1 µm
                self._residual = None
                changed = True
                self.volume_changed.emit(role)
        if changed:
            self.set_metrics({})

    def made_by(self, role: str) -> Mapping[str, Any] | None:
        """The provenance recorded with the ``role`` volume: what made it (None when loaded from a file)."""
        return self._made_by.get(_checked(role))

    def _set_made_by(self, role: str, made_by: Mapping[str, Any] | None) -> None:
        if made_by:
            self._made_by[role] = dict(made_by)
        else:
            self._made_by.pop(role, None)

    @property
    def model_path(self) -> Path | None:
        return self._model_path

    def set_model_path(self, path: str | Path | None) -> None:
        self._model_path = None if path is None else Path(path)
        self.model_changed.emit(self._model_path)

    @property
    def classifier_path(self) -> Path | None:
        """The classifier to use; None means the bundled one."""
        return self._classifier_path

    def set_classifier_path(self, path: str | Path | None) -> None:
        self._classifier_path = None if path is None else Path(path)
        self.classifier_changed.emit(self._classifier_path)

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self._metrics

    @property
    def running_job(self) -> str | None:
        """The name of the job that holds the window (training, denoising...), None while idle."""
        return self._running_job

    def set_running_job(self, name: str | None) -> None:
        if name != self._running_job:
            self._running_job = name
            self.job_changed.emit(name)

    def set_metrics(self, metrics: Mapping[str, Any]) -> None:
        if not metrics and not self._metrics:
            return
        self._metrics = dict(metrics)
        self.metrics_changed.emit(self._metrics)


def _checked(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown volume role {role!r}; choose from {', '.join(ROLES)}")
    return role
