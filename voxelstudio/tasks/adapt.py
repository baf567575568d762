"""Adapt a denoiser to one microscope from its raw bead scans alone: calibrate, simulate matched pairs, fine-tune.

The simulator is calibrated on the scans (:mod:`voxelstudio.tasks.calibrate`); pairs are simulated around the
fitted parameters (``jitter``) with the scans' voxel size and depth; the starting model (the bundled denoiser, or
``init``) is fine-tuned on them for what is left of ``minutes``, the budget of the whole adaptation. The fitted
parameters, the report and the measured bead are stored in the model's metadata (``extra["adaptation"]``), and where
the model puts beads on pairs simulated with them, with the input shift that puts them back
(:mod:`voxelstudio.tasks.offset_correction`). Without fine-tuning (``fine_tune=False``, ``adapt --correct-only``) the
starting model gets only that: the bundled model puts the beads of oil-objective scans of aqueous samples 0.4-1.0
planes deep, and the correction alone is worth +1.6 to +3.9 dB on five of six unseen microscopes
(benchmarks/README.md, "Unseen microscopes").
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.atomic import check_destination
from voxelstudio.core.errors import Cancelled, ModelError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume
from voxelstudio.sim import simulate_pair
from voxelstudio.sim.jitter import jitter_params
from voxelstudio.sim.measured_psf import simulate_pair_with_psf
from voxelstudio.tasks.calibrate import Calibration
from voxelstudio.tasks.calibration_file import calibrate_checked, calibration_record, check_measured_psf, load_scans
from voxelstudio.tasks.denoise import default_model_path
from voxelstudio.tasks.offset_correction import METADATA_KEY as OFFSET_KEY
from voxelstudio.tasks.offset_correction import MIN_OFFSET_BEADS, BeadOffset, model_bead_offset, save_with_offset
from voxelstudio.tasks.train import TrainResult, train_denoiser

PAIR_LATERAL = 96
"""Lateral size of the simulated pairs (the scans' depth is kept)."""
Shape = tuple[int, int, int]
DEFAULT_MINUTES = 5.0
MIN_FINE_TUNE_S = 6.0
"""Fine-tuning time when the calibration and simulation used up the budget (a few steps, so a model is written)."""
FINISH_S = 15.0
"""Kept from the fine-tuning for what follows it: loading the starting model, measuring where the best one puts
beads (on the fewest pairs) and saving it with its metadata (a 5-minute adaptation on one core ran 5.2 minutes
without it)."""
MEASURE_PAIR_S = 1.5
"""Kept besides for each measurement pair beyond the fewest: simulating it and predicting it twice."""
FINE_TUNE_LR = 3e-4
"""Adam learning rate of the fine-tuning (a third of training from scratch: the start is already good)."""
FINE_TUNE_LOSS = {"name": "imbalanced", "threshold": 0.1, "weight": 0.25}
"""The fine-tuning's loss (``LossConfig`` fields), whatever the starting model's: L1 with the beads' voxels (target
>= 0.1) weighted a quarter of the background's. Where a dim scan leaves a bead's depth uncertain, MSE answers with the
mean over where it could be and L1 with the median, both a longer bead; weighting the background more answers with a
lower quantile, a bead as compact as the target's (benchmarks/README.md, "Keeping the adapted beads compact").
Measured on 8 microscopes: beads within 10 % of the target's z/xy on 8 instead of 4, at 0.6-2.4 dB less PSNR."""


OFFSET_PAIRS = (3, 16)
"""Fewest and most pairs simulated with the calibrated parameters (no jitter) to measure where the adapted model
puts beads: as many as hold about :data:`OFFSET_BEADS` beads at the calibrated bead density."""
OFFSET_BEADS = 3 * MIN_OFFSET_BEADS
"""Beads the measurement's pairs should hold: some are too near a face to register, and fewer than
``MIN_OFFSET_BEADS`` measured leave the model uncorrected (3 pairs of a sparse scan held 6)."""


@dataclass(frozen=True)
class AdaptResult:
    """The calibration, the training outcome and the bead-position correction of :func:`adapt_files`."""

    calibration: Calibration
    training: TrainResult | None
    """None when the starting model was corrected only, not fine-tuned (``fine_tune=False``)."""
    bead_offset: BeadOffset | None = None
    model_path: Path | None = None
    """The adapted model; None when the fine-tuning stopped before its first epoch ended."""


def simulate_matched_pairs(
    cal: Calibration,
    shape: tuple[int, int, int],
    count: int,
    *,
    jitter: float = 0.1,
    seed: int = 0,
    psf: np.ndarray | None = None,
) -> list[tuple[Volume, Volume]]:
    """``count`` (raw, target) pairs of ``shape`` simulated around the calibrated parameters."""
    pairs = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        params = jitter_params(cal.params, rng, jitter)
        pair_seed = int(rng.integers(2**31))
        raw, target = (
            simulate_pair(shape, params, seed=pair_seed)
            if psf is None
            else simulate_pair_with_psf(shape, params, psf, seed=pair_seed)
        )
        spacing = params.optics.voxel_size_um
        pairs.append((Volume(raw, spacing, name=f"sim{index}"), Volume(target, spacing, name=f"sim{index}")))
    return pairs


FINE_TUNE_STEPS = 4
"""Batches per epoch when adapting: each epoch ends with a validation and a checkpoint of the best model so far.
Fine-tuning's validation loss swings within a few dozen batches (and the test scans' PSNR with it, by up to 4 dB;
benchmarks/README.md), so the best point is caught only by validating often: a 5-minute adaptation on a slow CPU
runs about 33 batches, and epochs of 16 could pick only the 16th or the 32nd."""
FINE_TUNE_PATIENCE = (60, 400)
"""(learning-rate plateau, early stopping) patience of the fine-tuning, in its short epochs: 240 and 1600 batches,
what they were with epochs of 16 (the bundled recipe's 15 and 100 epochs). Neither fired in any adaptation measured
(at most about 230 batches in 5 minutes), so the learning rate stays constant."""
PREVIEW_SHARE = 0.2
"""At most this share of the fine-tuning's time goes to predicting the whole scan for the window's preview (after
every short epoch it would take over a quarter of it on a slow CPU)."""


def fine_tune_config(cfg: Any, scan_shape: tuple[int, int, int], minutes: float, seed: int) -> tuple[Any, Shape]:
    """(training config, simulated pair shape): the starting model's recipe ``cfg`` with the fine-tuning loss,
    learning rate, budget and epoch length; pairs as deep as the scans (rounded up to the model's multiple), patches
    no larger than the pairs."""
    from voxelstudio.ml.denoisers import required_multiple

    multiple = required_multiple(cfg.model)
    lateral = [max(min(n, PAIR_LATERAL), m) for n, m in zip(scan_shape[:2], multiple[:2], strict=True)]
    shape = (lateral[0], lateral[1], int(np.ceil(max(scan_shape[2], multiple[2]) / multiple[2]) * multiple[2]))
    patch = tuple(max(m, min(p, (s // m) * m)) for p, s, m in zip(cfg.patch_shape, shape, multiple, strict=True))
    cfg = replace(
        cfg, minutes=minutes, epochs=100000, learning_rate=FINE_TUNE_LR, patch_shape=patch, seed=seed,
        steps_per_epoch=FINE_TUNE_STEPS, loss=replace(cfg.loss, **FINE_TUNE_LOSS),
        lr_patience=FINE_TUNE_PATIENCE[0], early_stopping_patience=FINE_TUNE_PATIENCE[1],
    )  # fmt: skip
    return cfg, shape


def offset_pair_count(bead_density: float, shape: Shape) -> int:
    """Pairs of ``shape`` that hold about :data:`OFFSET_BEADS` beads at ``bead_density`` (beads per voxel), within
    :data:`OFFSET_PAIRS`."""
    per_pair = max(float(bead_density), 0.0) * float(np.prod(shape))
    wanted = OFFSET_PAIRS[1] if per_pair <= 0 else int(np.ceil(OFFSET_BEADS / per_pair))
    return int(np.clip(wanted, *OFFSET_PAIRS))


def measure_bead_offset(
    loaded: Any, cal: Calibration, shape: Shape, *, seed: int, psf: np.ndarray | None,
    cancel: CancelToken | None = None,
) -> BeadOffset:  # fmt: skip
    """Where the model ``loaded`` puts beads (:func:`~voxelstudio.tasks.offset_correction.model_bead_offset`) on
    pairs simulated with the calibrated parameters (:func:`offset_pair_count` of them)."""
    count = offset_pair_count(cal.params.bead_density, shape)
    pairs = simulate_matched_pairs(cal, shape, count, jitter=0.0, seed=seed + 20_000, psf=psf)
    return model_bead_offset(loaded, pairs, "simulated", cancel=cancel)


def _store_adaptation(
    loaded: Any, out: Path, cal: Calibration, sources: Sequence[str | Path], psf: str | None, offset: BeadOffset | None
) -> None:
    """Write the model ``loaded`` to ``out`` with ``offset``'s correction (None: not measured, no correction), the
    calibration and the measured bead in the metadata."""
    record = calibration_record(cal, sources=sources, measured_psf=psf, bead_image="(in this model)")
    image = cal.beads.image.astype(np.float32)
    record["measured_bead"] = {
        "spacing_um": list(cal.params.optics.voxel_size_um),
        "shape": list(image.shape),
        "data": np.round(image / max(float(image.max()), 1e-12), 5).ravel().tolist(),
    }
    if offset is not None:
        record[OFFSET_KEY] = offset.to_dict()
    kept = {key: value for key, value in loaded.metadata.get("extra", {}).items() if key != OFFSET_KEY}  # superseded
    save_with_offset(loaded, out, offset, {**kept, "adaptation": record})


def adapted_voxel_size(metadata: dict[str, Any]) -> tuple[float, float, float] | None:
    """The voxel size (y, x, z µm) of the scans a model was adapted to, as :func:`_store_adaptation` records it."""
    bead = ((metadata.get("extra") or {}).get("adaptation") or {}).get("measured_bead") or {}
    spacing = bead.get("spacing_um")
    if isinstance(spacing, list) and len(spacing) == 3 and all(isinstance(v, (int, float)) for v in spacing):
        return float(spacing[0]), float(spacing[1]), float(spacing[2])
    return None


def adapt_files(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
    **options: Any,
) -> AdaptResult:
    """Load the scans at ``paths`` and adapt to them (:func:`adapt_volumes`; ``options`` go there)."""
    _check_arguments(Path(out), options.get("minutes", DEFAULT_MINUTES), options.get("init"))  # before loading scans
    return adapt_volumes(load_scans(paths), out, sources=paths, report=report, cancel=cancel, **options)


def _check_arguments(out: Path, minutes: float, init: str | Path | None) -> tuple[Path, Any]:
    """The starting model's path and training config (read from its metadata, without building the network); a
    one-line error (ValueError, or VolumeWriteError / ModelError from the shared checks) for a bad ``out``,
    ``minutes`` or ``init``, before any work."""
    if out.suffix != ".keras":
        raise ValueError(f"{out}: the model file must end in .keras")
    if not minutes > 0:
        raise ValueError(f"--minutes: must be positive, got {minutes:g}")
    init = default_model_path() if init is None else Path(init)
    if not init.exists():
        raise ValueError(f"{init}: no such model file")
    check_destination(out, overwrite=True)  # a missing or read-only folder fails now, not after the fine-tuning
    from voxelstudio.ml.config import TrainConfig
    from voxelstudio.ml.model_file import CLASSIFIER_FORMAT
    from voxelstudio.ml.persistence import read_members

    _, metadata = read_members(init)
    if metadata.get("format") == CLASSIFIER_FORMAT:
        raise ValueError(f"{init}: is a voxel classifier; adapt fine-tunes a denoiser")
    if "train_config" not in metadata:
        raise ValueError(f"{init}: not a VoxelStudio denoiser (no training config); --init needs one")
    try:
        return init, TrainConfig.from_dict(metadata["train_config"])
    except (TypeError, ValueError) as exc:
        raise ModelError(init, f"invalid VoxelStudio metadata: {exc}") from exc


def adapt_volumes(
    volumes: Sequence[Volume],
    out: str | Path,
    *,
    init: str | Path | None = None,
    minutes: float = DEFAULT_MINUTES,
    pairs: int = 8,
    jitter: float = 0.1,
    psf: str | Path | None = None,
    force: bool = False,
    seed: int = 0,
    sources: Sequence[str | Path] = (),
    on_calibrated: Callable[[Calibration], None] | None = None,
    on_preview: Callable[[int, np.ndarray], None] | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
    fine_tune: bool = True,
    **calibrate_options: Any,
) -> AdaptResult:
    """Calibrate on the scans, simulate ``pairs`` matched pairs and fine-tune ``init`` into ``out`` (module doc),
    all within ``minutes`` (the fine-tuning gets what the calibration and simulation left). ``on_calibrated``
    receives the calibration before the fine-tuning starts; ``on_preview(epoch, prediction)`` the prediction of the
    first scan (what the adapted model makes of it) after an epoch, within :data:`PREVIEW_SHARE` of the time;
    ``sources`` name the scans in the model's metadata. Without ``fine_tune``, ``out`` is ``init`` as it is, with
    the calibration and the shift that puts its beads back (15-30 s on a CPU, the longer for sparse beads; module
    :mod:`voxelstudio.tasks.offset_correction`)."""
    started = time.monotonic()
    out = Path(out)
    init, init_config = _check_arguments(out, minutes, init)
    report(Progress(0, None, "calibrating"))
    cal = calibrate_checked(volumes, psf=psf, force=force, report=report, cancel=cancel, **calibrate_options)
    psf_array = None if psf is None else check_measured_psf(psf, cal.params.optics.voxel_size_um)
    if cancel is not None:
        cancel.raise_if_cancelled("adaptation")
    if on_calibrated is not None:
        on_calibrated(cal)
    config, shape = fine_tune_config(init_config, cal.scan_shape, minutes, seed)
    names = sources or [v.source or v.name for v in volumes]
    psf_name = None if psf is None else str(Path(psf).resolve())
    if not fine_tune:
        from voxelstudio.ml.persistence import load_model

        report(Progress(None, None, "measuring where the model puts beads"))
        loaded = load_model(init)
        offset = measure_bead_offset(loaded, cal, shape, seed=seed, psf=psf_array, cancel=cancel)
        if cancel is not None:  # a Stop now still writes nothing
            cancel.raise_if_cancelled("adaptation")
        _store_adaptation(loaded, out, cal, names, psf_name, offset)
        return AdaptResult(cal, None, offset, out)
    report(Progress(0, None, f"simulating {pairs} matched pairs {shape}"))
    train_pairs = simulate_matched_pairs(cal, shape, pairs, jitter=jitter, seed=seed, psf=psf_array)
    val_pair = simulate_matched_pairs(cal, shape, 1, jitter=0.0, seed=seed + 10_000, psf=psf_array)[0]
    spent_s = time.monotonic() - started
    more_pairs = offset_pair_count(cal.params.bead_density, shape) - OFFSET_PAIRS[0]
    finish_s = FINISH_S + MEASURE_PAIR_S * more_pairs
    left_s = minutes * 60 - spent_s - finish_s
    if left_s < MIN_FINE_TUNE_S:
        warnings.warn(
            f"the {minutes * 60:.0f}-s budget, less {spent_s:.0f} s of calibrating and simulating and {finish_s:.0f} s "
            f"kept for measuring and saving, leaves the fine-tuning under its minimum of {MIN_FINE_TUNE_S:.0f} s, so "
            "the run ends late (give more minutes)",
            stacklevel=2,
        )
    config = replace(config, minutes=max(left_s, MIN_FINE_TUNE_S) / 60)
    from voxelstudio.ml.fit import checkpoint_paths

    try:
        result = train_denoiser(
            train_pairs, config=config, out=out, val_pairs=[val_pair], report=report, cancel=cancel, init=init,
            on_preview=on_preview, preview_input=volumes[0] if on_preview is not None else None,
            preview_share=PREVIEW_SHARE, correct_offset=False,  # measured below, on more pairs
        )  # fmt: skip
    finally:  # adapt has no --resume: the fine-tuning's checkpoint is of no use, whatever ended it
        for checkpoint in checkpoint_paths(out):
            checkpoint.unlink(missing_ok=True)
    offset = None
    if result.model_path is not None:  # also after a Stop: the best model so far, with its calibration
        from voxelstudio.ml.persistence import load_model

        loaded = load_model(result.model_path)
        if result.stopped_reason != "cancelled":
            report(Progress(None, None, "measuring where the model puts beads"))
            try:
                offset = measure_bead_offset(loaded, cal, shape, seed=seed, psf=psf_array, cancel=cancel)
            except Cancelled:  # Stop during the measurement: the model is kept, uncorrected, as after a Stop
                result = replace(result, stopped_reason="cancelled")
        _store_adaptation(loaded, result.model_path, cal, names, psf_name, offset)
    return AdaptResult(cal, result, offset, result.model_path)
