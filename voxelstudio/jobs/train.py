"""The Train panel's job as it runs in the worker process: gather the training data, train, and measure each live
preview's bead elongation there, so the window only draws numbers.

Qt-free (the child process imports it): only numpy, tasks and metrics. Previews and their measured quality are
reported as :class:`~voxelstudio.jobs.events.Preview` and :class:`~voxelstudio.jobs.events.PreviewQuality` events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume
from voxelstudio.jobs.events import Preview, PreviewQuality


@dataclass(frozen=True)
class TrainingData:
    """Where the training pairs come from: the loaded pair (``folders`` None), or a raw and a target folder whose
    files are paired by name (as ``voxelstudio train-denoiser --raw R --target T``). With folders, the loaded pair
    validates when ``validate_on_loaded``; otherwise the config's ``val_fraction`` of the folder pairs does."""

    folders: tuple[Path, Path] | None = None
    validate_on_loaded: bool = True

    @property
    def needs_loaded_pair(self) -> bool:
        return self.folders is None or self.validate_on_loaded


def train_from_data(
    data: TrainingData,
    loaded: tuple[Volume, Volume] | None,
    *,
    config: Any,
    out: Path,
    init: Path | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> Any:
    """Train a denoiser on ``data`` (``loaded`` is the window's raw/target pair, or None); returns a TrainResult.
    ``init``: a model file (same architecture) whose weights training starts from, e.g. the bundled denoiser.

    Each epoch's preview is reported as a Preview event, then measured: a PreviewQuality event gives its median z/xy
    bead FWHM ratio beside the ratio of the volume it should become.
    """
    from voxelstudio.tasks.train import load_pairs, split_validation, train_denoiser

    if data.needs_loaded_pair and loaded is None:
        raise ValueError("training needs a loaded raw and target volume")
    if data.folders is None:
        pairs, val_pair = [loaded], loaded
    else:
        report(Progress(0, None, f"Loading training pairs from {data.folders[0].name}…"))
        pairs = load_pairs(*data.folders)
        val_pair = loaded if data.validate_on_loaded else None
    if val_pair is not None:
        previewed = val_pair
    else:  # the first validation pair, as train_denoiser splits them (the first training pair when none)
        train, val = split_validation(pairs, config.val_fraction, config.seed)
        previewed = (val or train)[0]
    measure = _PreviewMeasure(previewed[1], report)
    return train_denoiser(
        pairs, config=config, out=out, val_pairs=None if val_pair is None else [val_pair], init=init, report=report,
        cancel=cancel,
        on_preview=measure.preview,
    )  # fmt: skip


class _PreviewMeasure:
    """Reports each preview, then its z/xy FWHM ratio."""

    def __init__(self, target: Volume, report: ReportFn) -> None:
        from voxelstudio.metrics import bead_fwhm

        self.spacing = target.spacing
        self.target_ratio = _ratio(bead_fwhm(target.data, self.spacing))
        self._report = report

    def preview(self, epoch: int, array: np.ndarray) -> None:
        from voxelstudio.metrics import bead_fwhm

        self._report(Preview(int(epoch), np.asarray(array, dtype=np.float32)))
        self._report(PreviewQuality(int(epoch), _ratio(bead_fwhm(array, self.spacing)), self.target_ratio))


def _ratio(fwhm: dict) -> float:
    """The median z/xy ratio of a bead_fwhm result, NaN when no bead could be measured."""
    ratio = fwhm.get("ratio")
    return math.nan if ratio is None else float(ratio)
