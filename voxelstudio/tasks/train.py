"""Train a denoiser from (raw, target) Volume pairs: check the pairs, split off validation, fit, report."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voxelstudio.core.atomic import check_destination
from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume, is_constant
from voxelstudio.io import SUPPORTED_SUFFIXES, load_volume
from voxelstudio.io.api import volume_name
from voxelstudio.tasks.offset_correction import BeadOffset, correct_trained_model

if TYPE_CHECKING:
    from voxelstudio.ml.config import TrainConfig

VolumePair = tuple[Volume, Volume]


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_denoiser`: where the best model is and how training went."""

    model_path: Path | None
    history: dict[str, list[float]]
    best_val_loss: float
    epochs_run: int
    stopped_reason: str  # "epochs" | "time" | "early_stopping" | "cancelled"
    bead_offset: BeadOffset | None = None
    """Where the best model puts the validation pairs' beads, and the correction it now carries (None: not
    measured, e.g. no model or no validation pairs)."""


def check_pairs(pairs: Sequence[VolumePair]) -> None:
    """Raise ValueError naming both volumes when a raw and its target differ in shape, and naming the targets when
    they all hold one and the same value (nothing to learn)."""
    if not pairs:
        raise ValueError("no (raw, target) pairs to train on")
    for raw, target in pairs:
        if raw.shape != target.shape:
            raise ValueError(f"{raw.label} {raw.shape} and {target.label} {target.shape}: raw and target shapes differ")
    targets = [target for _, target in pairs]
    constant = [float(t.data.flat[0]) for t in targets if is_constant(t.data)]
    if len(constant) == len(targets) and len(set(constant)) == 1:
        others = f" and the {len(targets) - 1} other targets" if len(targets) > 1 else ""
        raise ValueError(f"{targets[0].label}{others}: {constant[0]:g} everywhere; there is nothing to learn")


def check_known_spacing(volumes: Sequence[Volume]) -> None:
    """ValueError naming the first volume whose voxel size is unknown: a model that takes the voxel size as an
    input cannot learn from it (nor be used on such files)."""
    for volume in volumes:
        if volume.known_spacing is None:
            raise ValueError(
                f"{volume.label}: voxel size not known, and the model takes it as an input; save the files with "
                "their voxel size (.mat with voxel_size_um, OME-TIFF, OME-Zarr; in the window: View settings) or "
                "train without --spacing-input"
            )


def split_validation(
    pairs: Sequence[VolumePair], fraction: float, seed: int
) -> tuple[list[VolumePair], list[VolumePair]]:
    """(train, validation): ``round(n * fraction)`` pairs, at least one when there are two or more, chosen by seed."""
    n = len(pairs)
    n_val = 0 if n < 2 else min(max(round(n * fraction), 1), n - 1)
    chosen = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    train = [p for i, p in enumerate(pairs) if i not in chosen]
    return train, [p for i, p in enumerate(pairs) if i in chosen]


def train_denoiser(
    pairs: Sequence[VolumePair],
    *,
    config: TrainConfig,
    out: str | Path,
    val_pairs: Sequence[VolumePair] | None = None,
    resume: bool = False,
    init: str | Path | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
    on_preview: Callable[[int, np.ndarray], None] | None = None,
    preview_input: Volume | None = None,
    preview_share: float = 1.0,
    correct_offset: bool = True,
) -> TrainResult:
    """Train ``config``'s denoiser; the best model goes to ``out`` (checkpoints beside it, see ml.training).

    Without ``val_pairs``, ``config.val_fraction`` of the pairs (at least one of two or more) validate. ``init``: a
    model file (same architecture) whose weights training starts from. ``on_preview(epoch, prediction)`` sees the
    prediction of ``preview_input`` (default: the first validation raw) after an epoch: every epoch, or as often as
    keeps previews within ``preview_share`` of the time. With ``correct_offset``, where the best model puts the
    validation pairs' beads is measured and, when it moves them, corrected in the model file
    (:mod:`voxelstudio.tasks.offset_correction`; not after a Stop, which should end at once).
    """
    from voxelstudio.ml.spacing import PairSpacings
    from voxelstudio.ml.training import fit_denoiser

    config.validate()
    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"{out}: the model file must end in .keras")
    check_destination(out, overwrite=True)  # a missing or read-only folder fails now, not after the training
    check_pairs(pairs)
    if config.model.spacing_input:  # the raw volumes' voxel sizes are the ones the network gets
        raws = [raw for raw, _ in [*pairs, *(val_pairs or [])]]
        check_known_spacing(raws + ([preview_input] if preview_input is not None else []))
    if val_pairs:
        check_pairs(val_pairs)
        train, val = without_validation_pairs(pairs, val_pairs), list(val_pairs)
    else:
        train, val = split_validation(pairs, config.val_fraction, config.seed)
    outcome = fit_denoiser(
        [(r.data, t.data) for r, t in train],
        [(r.data, t.data) for r, t in val],
        config,
        out_path=out,
        resume=resume,
        init=init,
        report=report,
        cancel=cancel,
        on_preview=on_preview,
        preview_input=None if preview_input is None else preview_input.data,
        preview_share=preview_share,
        spacings=PairSpacings(
            [r.spacing for r, _ in train],
            [r.spacing for r, _ in val],
            None if preview_input is None else preview_input.spacing,
        ),
    )
    offset = None
    if correct_offset and outcome.model_path is not None and val and outcome.stopped_reason != "cancelled":
        report(Progress(None, None, "measuring where the model puts beads"))
        try:
            offset = correct_trained_model(outcome.model_path, val, cancel=cancel)
        except Cancelled:  # Stop during the measurement: the trained model is kept as it is, uncorrected
            outcome = replace(outcome, stopped_reason="cancelled")
    if correct_offset and init is not None and offset is None and outcome.model_path is not None:
        _warn_dropped_correction(Path(init))
    return TrainResult(
        outcome.model_path, outcome.history, outcome.best_val_loss, outcome.epochs_run, outcome.stopped_reason, offset
    )


def _warn_dropped_correction(init: Path) -> None:
    """Warn when the model training started from moved scans to put its beads back and the new one was not measured
    (no validation pairs, or a Stop): the fine-tuned network puts beads elsewhere, so the shift is not carried over."""
    from voxelstudio.core.errors import ModelError
    from voxelstudio.ml.persistence import FLIPPED_SHIFT_KEY, INPUT_SHIFT_KEY, read_members

    try:
        _, metadata = read_members(init)
    except ModelError:  # not a .keras file of ours (a BioImage package, say): no shift it could have carried
        return
    if INPUT_SHIFT_KEY in metadata or FLIPPED_SHIFT_KEY in metadata:
        warnings.warn(
            f"{init.name} moved scans to put its beads back; the fine-tuned model was not measured (no validation "
            "pairs, or stopped), so it moves nothing: measure it with `voxelstudio adapt RAW --correct-only --init "
            "MODEL`",
            stacklevel=3,
        )


def without_validation_pairs(pairs: Sequence[VolumePair], val_pairs: Sequence[VolumePair]) -> list[VolumePair]:
    """``pairs`` less the ones that are validation pairs (the same raw data): validating on a training pair would
    pick the best model and stop early on what it learned (a loaded scan from the training folder, say), with a
    warning. When every training pair validates too (the loaded pair alone), training keeps them."""
    raws = [np.asarray(raw.data) for raw, _ in val_pairs]

    def validates(pair: VolumePair) -> bool:
        return any(pair[0].data.shape == raw.shape and np.array_equal(pair[0].data, raw) for raw in raws)

    kept = [p for p in pairs if not validates(p)]
    if len(kept) < len(pairs) and kept:
        names = ", ".join(p[0].label for p in pairs if validates(p))
        warnings.warn(f"validation pairs that are also training pairs are left out of training: {names}", stacklevel=3)
        return kept
    return list(pairs)


def _volume_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        volume = path.is_file() or path.suffix.lower() == ".zarr"  # a Zarr store is a folder
        if volume and path.suffix.lower() in SUPPORTED_SUFFIXES and not path.name.startswith("."):
            name = volume_name(path)  # scan.ome.tif and scan.tif are both "scan"
            if name in files:
                raise ValueError(f"{folder}: two volume files share the name {name!r}")
            files[name] = path
    if not files:
        raise ValueError(f"{folder}: no volume files ({', '.join(SUPPORTED_SUFFIXES)})")
    return files


def load_pairs(raw: str | Path, target: str | Path) -> list[VolumePair]:
    """Load (raw, target) pairs: two volumes (files or Zarr stores), or two folders whose volumes are matched by
    name (``scan.ome.tif`` matches ``scan.tif``)."""
    raw, target = Path(raw), Path(target)
    for path in (raw, target):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    raw_folder, target_folder = (p.is_dir() and p.suffix.lower() != ".zarr" for p in (raw, target))
    if raw_folder != target_folder:
        raise ValueError(f"{raw} and {target}: give two files or two folders, not one of each")
    if not raw_folder:
        return [(load_volume(raw), load_volume(target))]
    raws, targets = _volume_files(raw), _volume_files(target)
    for folder, missing in ((target, sorted(set(raws) - set(targets))), (raw, sorted(set(targets) - set(raws)))):
        if missing:
            raise ValueError(f"{folder}: no file matching {', '.join(missing)} (pairs are matched by file name)")
    return [(load_volume(raws[stem]), load_volume(targets[stem])) for stem in sorted(raws)]
