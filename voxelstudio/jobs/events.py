"""What a running job tells its owner: small, picklable dataclasses, one per kind of news.

A job reports through the ordinary ``report`` callback. Tasks below this layer report :class:`~voxelstudio.core.
progress.Progress`; :func:`as_event` turns each one into the event it stands for, once, where the job starts (in the
child process for isolated jobs), so what crosses the process boundary and reaches the window is always one of
these dataclasses, unchanged. Receivers dispatch on the event's type (:meth:`JobEvent.handler_name`), never on a
job's name or a message text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from voxelstudio.core.progress import Progress


@dataclass(frozen=True)
class JobEvent:
    """Base class; ``handler_name`` is the method a job handler defines to receive this kind of event."""

    handler: ClassVar[str] = "on_event"

    @classmethod
    def handler_name(cls) -> str:
        return cls.handler


@dataclass(frozen=True)
class ProgressEvent(JobEvent):
    """``done`` of ``total`` units (total None: unknown) and a short text for a status line."""

    handler: ClassVar[str] = "on_progress"
    done: float = 0.0
    total: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)


@dataclass(frozen=True)
class TileProgress(ProgressEvent):
    """A tile of a tiled prediction is done: ``tile`` of ``tiles`` (in ``transform`` of ``transforms`` with
    test-time augmentation; both 0 without). ``done``/``total`` count the whole job. A handler without
    ``on_tiles`` gets it in ``on_progress``."""

    handler: ClassVar[str] = "on_tiles"
    tile: int = 0
    tiles: int = 0
    transform: int = 0
    transforms: int = 0

    def describe(self) -> str:
        """``"tile 3/12"``, or ``"transform 2/8 · tile 3/12"``."""
        tiles = f"tile {self.tile}/{self.tiles}"
        return f"transform {self.transform}/{self.transforms} · {tiles}" if self.transforms > 1 else tiles


@dataclass(frozen=True)
class TrainingStep(ProgressEvent):
    """A training batch ended: where training is, the last batch's loss and the estimated time left."""

    handler: ClassVar[str] = "on_step"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: float = math.nan
    val_loss: float = math.nan
    val_accuracy: float = math.nan
    eta_s: float = math.nan


@dataclass(frozen=True)
class EpochResult(TrainingStep):
    """An epoch ended; ``validated`` when it was measured on validation data (``val_*`` are NaN otherwise)."""

    handler: ClassVar[str] = "on_epoch"
    validated: bool = False
    val_psnr: float = math.nan


@dataclass(frozen=True)
class Preview(JobEvent):
    """The model's prediction of the preview volume after ``epoch`` (1-based)."""

    handler: ClassVar[str] = "on_preview"
    epoch: int = 0
    array: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.float32), compare=False, repr=False)


@dataclass(frozen=True)
class PreviewQuality(JobEvent):
    """How far the preview after ``epoch`` is from its target: median z/xy bead FWHM ratio of each."""

    handler: ClassVar[str] = "on_preview_quality"
    epoch: int = 0
    fwhm_ratio: float = math.nan
    target_fwhm_ratio: float = math.nan


@dataclass(frozen=True)
class TrialResult(JobEvent):
    """A hyper-parameter search trial ended: its number (1-based) of ``trials``, the parameters it tried, the
    validation accuracy and loss of its best epoch (NaN when it has none), and how it ended (``state``: "complete",
    "failed" or "stopped")."""

    handler: ClassVar[str] = "on_trial"
    trial: int = 0
    trials: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    val_accuracy: float = math.nan
    val_loss: float = math.nan
    epochs_run: int = 0
    state: str = "complete"

    @classmethod
    def from_record(cls, record: dict[str, Any], trials: int) -> TrialResult:
        """The event for one record of the search's JSON (see ``voxelstudio.ml.classifier_search``)."""
        known = {"trial", "val_accuracy", "val_loss", "epochs_run", "state"}
        params = {k: v for k, v in record.items() if k not in known}
        state = str(record.get("state", "complete"))
        return cls(_count(record, "trial"), int(trials), params, _number(record, "val_accuracy"),
                   _number(record, "val_loss"), _count(record, "epochs_run"), state)  # fmt: skip


@dataclass(frozen=True)
class CalibrationFound(JobEvent):
    """An adaptation calibrated the simulator on the raw volume: the fitted values and the measured vs fitted bead.

    ``fitted`` is (name, value, standard error) in the simulator's units (NaN where the fit cannot tell);
    ``measured_xz`` and ``fitted_xz`` are the averaged bead and the fitted model through the bead's centre (x, z),
    ``measured_xy`` and ``fitted_xy`` the same through its focal plane (y, x),
    each scaled to a peak of 1, with their (lateral, axial) FWHM in µm (NaN: not measurable). ``z_reversed``: the
    stack runs against the simulator's focal-scan direction (``OpticsParams.z_reversed``).
    """

    handler: ClassVar[str] = "on_calibration"
    fitted: tuple[tuple[str, float, float], ...] = ()
    beads_used: int = 0
    converged: bool = False
    z_reversed: bool = False
    relative_residual: float = math.nan
    spacing_um: tuple[float, float, float] = (1.0, 1.0, 1.0)
    measured_fwhm_um: tuple[float, float] = (math.nan, math.nan)
    fitted_fwhm_um: tuple[float, float] = (math.nan, math.nan)
    measured_xz: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32), compare=False, repr=False)
    fitted_xz: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32), compare=False, repr=False)
    measured_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32), compare=False, repr=False)
    fitted_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32), compare=False, repr=False)


@dataclass(frozen=True)
class JobResult(JobEvent):
    """The job's return value."""

    handler: ClassVar[str] = "on_result"
    value: Any = None


@dataclass(frozen=True)
class JobFailed(JobEvent):
    """The job failed: a one-line ``message`` for a dialog, the traceback as ``details``."""

    handler: ClassVar[str] = "on_failed"
    message: str = ""
    details: str = ""
    out_of_memory: bool = False


@dataclass(frozen=True)
class JobCancelled(JobEvent):
    """The job stopped because it was asked to."""

    handler: ClassVar[str] = "on_cancelled"
    message: str = ""


EVENT_TYPES: tuple[type[JobEvent], ...] = (
    ProgressEvent, TileProgress, TrainingStep, EpochResult, Preview, PreviewQuality, TrialResult, CalibrationFound,
    JobResult, JobFailed, JobCancelled,
)  # fmt: skip


def _number(values: Any, key: str) -> float:
    value = values.get(key, math.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _count(values: Any, key: str) -> int:
    value = values.get(key)
    return int(value) if isinstance(value, (int, float, np.integer, np.floating)) else 0


def as_event(news: JobEvent | Progress) -> JobEvent:
    """The event a report stands for: events pass unchanged; a training Progress (it has ``epoch``) becomes a
    :class:`TrainingStep` or, at an epoch's end, an :class:`EpochResult`; a tiled prediction's (it has ``tile``) a
    :class:`TileProgress`; any other Progress a :class:`ProgressEvent`."""
    if isinstance(news, JobEvent):
        return news
    values = news.values
    done = 0.0 if news.done is None else float(news.done)  # None: a stage with no count of its own
    base = {"done": done, "total": None if news.total is None else float(news.total), "message": news.message}
    if values.get("epoch") is None:
        if values.get("tile") is not None:
            counts = {key: _count(values, key) for key in ("tile", "tiles", "transform", "transforms")}
            return TileProgress(**base, **counts)
        return ProgressEvent(**base)
    training = dict(
        base, epoch=_count(values, "epoch"), epochs=_count(values, "epochs"), step=_count(values, "step"),
        steps=_count(values, "steps"), loss=_number(values, "loss"), val_loss=_number(values, "val_loss"),
        val_accuracy=_number(values, "val_accuracy"), eta_s=_number(values, "eta_s"),
    )  # fmt: skip
    if values.get("epoch_end"):
        validated = bool(values.get("validated"))
        return EpochResult(**training, validated=validated, val_psnr=_number(values, "val_psnr"))
    return TrainingStep(**training)


def dispatch(handler: object, event: JobEvent) -> None:
    """Call ``handler``'s method for ``event``'s type (see :attr:`JobEvent.handler`), if it has one; an event whose
    own method is missing goes to the method of its nearest base class that the handler defines."""
    for kind in type(event).__mro__:
        name = getattr(kind, "handler", None)
        method = getattr(handler, name, None) if name else None
        if method is not None:
            method(event)
            return
