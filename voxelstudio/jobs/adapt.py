"""The Train panel's "Adapt to the raw volume" job as it runs in the worker process: calibrate the simulator on the
loaded raw volume, report what the calibration found, then fine-tune on matched simulated pairs.

Qt-free (the child process imports it). The calibration is reported as one
:class:`~voxelstudio.jobs.events.CalibrationFound` event as soon as it is known, minutes before the fine-tuning
ends; the job returns an :class:`AdaptOutcome`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume
from voxelstudio.jobs.events import CalibrationFound, JobEvent, Preview, TrainingStep, as_event


@dataclass(frozen=True)
class AdaptOutcome:
    """What an adaptation found and trained: the calibration as reported, the training's TrainResult (None when the
    model was corrected only, not fine-tuned), where the model puts beads
    (``tasks.offset_correction.BeadOffset.summary``; empty when no model was saved) and the adapted model (None when
    training stopped before its first epoch ended)."""

    calibration: CalibrationFound
    training: Any  # voxelstudio.tasks.train.TrainResult | None
    bead_offset: str = ""
    model_path: Path | None = None
    corrected: bool = False
    """Whether the model moves scans to put its beads back (``BeadOffset.corrects``)."""

    @property
    def completed(self) -> bool:
        """True when the adaptation ran to its end (it was not stopped) and saved a model."""
        stopped = self.training is not None and self.training.stopped_reason == "cancelled"
        return self.model_path is not None and not stopped


def adapt_to_volume(
    raw: Volume,
    *,
    out: Path,
    minutes: float,
    init: Path | None = None,
    calibrate_options: dict[str, Any] | None = None,
    fine_tune: bool = True,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> AdaptOutcome:
    """Adapt ``init`` (default: the bundled denoiser) to ``raw``'s microscope for ``minutes``, into ``out``;
    ``calibrate_options`` (``na``, ``wavelength_um``, ``dark``...) go to the calibration; without ``fine_tune``
    the model is only corrected for where it puts beads (``tasks.adapt.adapt_volumes``)."""
    from voxelstudio.tasks.adapt import adapt_volumes

    found: list[CalibrationFound] = []
    budget_s = minutes * 60.0

    def forward(news: JobEvent | Progress) -> None:
        """Fine-tuning runs on a time budget (its epoch count is a formality): its progress is the time spent."""
        event = as_event(news)
        if isinstance(event, TrainingStep) and math.isfinite(event.eta_s):
            event = dataclasses.replace(event, done=max(budget_s - event.eta_s, 0.0), total=budget_s)
        report(event)

    def calibrated(cal: Any) -> None:
        found.append(calibration_event(cal))
        report(found[-1])

    name = raw.label
    try:
        result = adapt_volumes(
            [raw], out, init=init, minutes=minutes, sources=[name], on_calibrated=calibrated,
            on_preview=lambda epoch, array: report(Preview(int(epoch), np.asarray(array, np.float32))),
            report=forward, cancel=cancel, fine_tune=fine_tune, **(calibrate_options or {}),
        )  # fmt: skip
    except ValueError as exc:  # too few beads, no voxel size, a bad dark stack...: one line naming the file
        given = [str(path) for key in ("dark", "psf") if (path := (calibrate_options or {}).get(key))]
        raise ValueError(_naming_the_file(str(exc), name, given)) from exc
    offset = "" if result.bead_offset is None else result.bead_offset.summary()
    found_event = found[-1] if found else calibration_event(result.calibration)
    corrected = result.bead_offset is not None and result.bead_offset.corrects
    return AdaptOutcome(found_event, result.training, offset, result.model_path, corrected)


def _naming_the_file(message: str, volume: str, given_files: list[str]) -> str:
    """``message`` naming the file it is about by its name: a leading path of a given file (dark stack, measured PSF)
    or the volume's label becomes the file's name; a message that names no file gets the volume's."""
    for path in (*given_files, volume):
        if message.startswith(f"{path}: "):
            return f"{Path(path).name}: {message.removeprefix(f'{path}: ')}"
    short = Path(volume).name
    return message if short in message else f"{short}: {message}"


def calibration_event(cal: Any) -> CalibrationFound:
    """The :class:`CalibrationFound` event of a :class:`~voxelstudio.tasks.calibrate.Calibration`."""
    measured, model = np.asarray(cal.beads.image, np.float32), np.asarray(cal.optics_fit.model, np.float32)
    y, _, z = (int(i) for i in np.unravel_index(int(np.argmax(model)), model.shape))  # the fitted bead's centre
    return CalibrationFound(
        fitted=tuple((name, _float(value), _float(sd)) for name, (value, sd) in cal.fitted.items()),
        beads_used=len(cal.beads.amplitudes),
        converged=bool(cal.converged),
        z_reversed=bool(cal.params.optics.z_reversed),
        relative_residual=_float(cal.optics_fit.relative_residual),
        spacing_um=tuple(float(s) for s in cal.params.optics.voxel_size_um),  # type: ignore[arg-type]
        measured_fwhm_um=_widths(cal.fwhm_um.get("measured", {})),
        fitted_fwhm_um=_widths(cal.fwhm_um.get("model", {})),
        measured_xz=_unit_peak(measured[y]),
        fitted_xz=_unit_peak(model[y]),
        measured_xy=_unit_peak(measured[:, :, z]),
        fitted_xy=_unit_peak(model[:, :, z]),
    )


def _unit_peak(section: np.ndarray) -> np.ndarray:
    peak = float(np.max(section)) if section.size else 0.0
    return np.ascontiguousarray(section / peak if peak > 0 else section, dtype=np.float32)


def _widths(fwhm: dict[str, float | None]) -> tuple[float, float]:
    return (_float(fwhm.get("lateral")), _float(fwhm.get("axial")))


def _float(value: float | None) -> float:
    """NaN for a value that is not known (None, or an infinite standard error)."""
    return math.nan if value is None or not math.isfinite(value) else float(value)
