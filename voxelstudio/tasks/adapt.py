"""Adapt a denoiser to one microscope from its raw bead scans alone: calibrate, simulate matched pairs, fine-tune.

The simulator is calibrated on the scans (:mod:`voxelstudio.tasks.calibrate`); pairs are simulated around the
fitted parameters (``jitter``) with the scans' voxel size and depth; the starting model (the bundled denoiser, or
``init``) is fine-tuned on them for what is left of ``minutes``, the budget of the whole adaptation. The fitted
parameters, the report and the measured bead are stored in the model's metadata (``extra["adaptation"]``).
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
from voxelstudio.core.errors import ModelError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume
from voxelstudio.sim import simulate_pair
from voxelstudio.sim.jitter import jitter_params
from voxelstudio.sim.measured_psf import simulate_pair_with_psf
from voxelstudio.tasks.calibrate import Calibration
from voxelstudio.tasks.calibration_file import calibrate_checked, calibration_record, check_measured_psf, load_scans
from voxelstudio.tasks.denoise import default_model_path
from voxelstudio.tasks.train import TrainResult, train_denoiser

PAIR_LATERAL = 96
"""Lateral size of the simulated pairs (the scans' depth is kept)."""
Shape = tuple[int, int, int]
DEFAULT_MINUTES = 5.0
MIN_FINE_TUNE_S = 6.0
"""Fine-tuning time when the calibration and simulation used up the budget (a few steps, so a model is written)."""
FINISH_S = 15.0
"""Kept from the fine-tuning for what follows it: loading the starting model, measuring where the best one puts
beads and saving it with its metadata (a 5-minute adaptation on one core ran 5.2 minutes without it)."""
FINE_TUNE_LR = 3e-4
"""Adam learning rate of the fine-tuning (a third of training from scratch: the start is already good)."""
FINE_TUNE_LOSS = {"name": "imbalanced", "threshold": 0.1, "weight": 0.25}
"""The fine-tuning's loss (``LossConfig`` fields), whatever the starting model's: L1 with the beads' voxels (target
>= 0.1) weighted a quarter of the background's. Where a dim scan leaves a bead's depth uncertain, MSE answers with the
mean over where it could be and L1 with the median, both a longer bead; weighting the background more answers with a
lower quantile, a bead as compact as the target's (benchmarks/README.md, "Keeping the adapted beads compact").
Measured on 8 microscopes: beads within 10 % of the target's z/xy on 8 instead of 4, at 0.6-2.4 dB less PSNR."""


OFFSET_PAIRS = 3
"""Pairs simulated with the calibrated parameters (no jitter) to measure where the adapted model puts beads."""
MIN_OFFSET_BEADS = 20
"""Fewer beads measured than this: no correction (the median of so few is not a systematic offset)."""
MIN_CORRECTED_OFFSET = 0.25
"""An axis is corrected when the model's beads sit at least this far (voxels) from the truth along it: models
without an offset measured within 0.1 voxel, and a repeated measurement moved by up to 0.13 (benchmarks/README.md,
"Where the adapted model puts beads")."""


@dataclass(frozen=True)
class BeadOffset:
    """Where the adapted model puts beads on pairs simulated with the calibrated parameters, and the correction."""

    measured: tuple[float, float, float]
    """Median position of the model's beads minus the simulated truth's, voxels (y, x, z)."""
    beads: int
    input_shift: tuple[float, float, float]
    """What prediction moves scans by (``persistence.LoadedModel.input_shift``); zero on uncorrected axes."""
    flipped_measured: tuple[float, float, float] | None = None
    """The same for the model's prediction of the scan flipped along z (flipped back), as test-time augmentation
    makes it: a model fine-tuned on one microscope puts those beads elsewhere (1.35 planes against 0.63)."""
    flipped_input_shift: tuple[float, float, float] | None = None

    def summary(self) -> str:
        """One sentence for the CLI and the window."""
        moved = ", ".join(f"{v:+.2f}" for v in self.measured)
        if not any(self.input_shift):
            return (
                f"Bead positions: within {MIN_CORRECTED_OFFSET} voxel of the truth on {self.beads} simulated beads "
                f"(y, x, z {moved})."
            )
        shift = ", ".join(f"{v:+.2f}" for v in self.input_shift)
        return (
            f"Bead positions: the model moved beads by (y, x, z) {moved} voxels on {self.beads} simulated beads; "
            f"predictions move the scan by {shift} to put them back."
        )

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "measured_vox": list(self.measured), "beads": self.beads, "input_shift_vox": list(self.input_shift),
        }  # fmt: skip
        if self.flipped_measured is not None and self.flipped_input_shift is not None:
            record["flipped_measured_vox"] = list(self.flipped_measured)
            record["flipped_input_shift_vox"] = list(self.flipped_input_shift)
        return record


@dataclass(frozen=True)
class AdaptResult:
    """The calibration, the training outcome and the bead-position correction of :func:`adapt_files`."""

    calibration: Calibration
    training: TrainResult
    bead_offset: BeadOffset | None = None


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


def measure_bead_offset(
    loaded: Any, cal: Calibration, shape: Shape, *, seed: int, psf: np.ndarray | None
) -> BeadOffset:
    """:func:`bead_offset_of` the model ``loaded`` on :data:`OFFSET_PAIRS` pairs simulated with the calibrated
    parameters, for its plain prediction and for the z-flipped view of test-time augmentation."""
    from voxelstudio.ml.inference import forward_transform, inverse_transform, predict_volume

    pairs = simulate_matched_pairs(cal, shape, OFFSET_PAIRS, jitter=0.0, seed=seed + 20_000, psf=psf)
    plain = bead_offset_of(lambda raw: predict_volume(loaded, raw.data, spacing=raw.spacing)[0], pairs)

    def flipped(raw: Volume) -> np.ndarray:  # the z-flipped view of test-time augmentation, turned back
        view = forward_transform(raw.data, 0, True)
        return inverse_transform(predict_volume(loaded, view, spacing=raw.spacing)[0], 0, True)

    other = bead_offset_of(flipped, pairs)
    return replace(plain, flipped_measured=other.measured, flipped_input_shift=other.input_shift)


def bead_offset_of(predict: Callable[[Volume], np.ndarray], pairs: Sequence[tuple[Volume, Volume]]) -> BeadOffset:
    """Where ``predict`` puts the beads of the (raw, target) ``pairs`` relative to the targets' (the median over
    all beads), and the input shift that puts them back on the axes where they are off by
    :data:`MIN_CORRECTED_OFFSET` or more."""
    from voxelstudio.metrics.bead_offset import bead_shifts, median_offset

    shifts = np.concatenate([bead_shifts(predict(raw), target.data, raw.spacing) for raw, target in pairs])
    measured = median_offset(shifts)
    correct = len(shifts) >= MIN_OFFSET_BEADS and np.abs(measured) >= MIN_CORRECTED_OFFSET
    shift = np.where(correct, -measured, 0.0)
    return BeadOffset(_rounded(measured), len(shifts), _rounded(shift))


def _rounded(values: np.ndarray) -> tuple[float, float, float]:
    y, x, z = (round(float(v), 3) + 0.0 for v in values)  # + 0.0: no -0.0 in the file
    return y, x, z


def _store_adaptation(
    model_path: Path, cal: Calibration, sources: Sequence[str | Path], psf: str | None, *, shape: Shape, seed: int,
    psf_array: np.ndarray | None,
) -> BeadOffset:  # fmt: skip
    """Measure the model's bead offset (:func:`measure_bead_offset`), then rewrite the model with its correction,
    the calibration and the measured bead in the metadata."""
    from voxelstudio.ml.persistence import load_model, save_model

    loaded = load_model(model_path)
    offset = measure_bead_offset(loaded, cal, shape, seed=seed, psf=psf_array)
    record = calibration_record(cal, sources=sources, measured_psf=psf, bead_image="(in this model)")
    image = cal.beads.image.astype(np.float32)
    record["measured_bead"] = {
        "spacing_um": list(cal.params.optics.voxel_size_um),
        "shape": list(image.shape),
        "data": np.round(image / max(float(image.max()), 1e-12), 5).ravel().tolist(),
    }
    record["bead_offset"] = offset.to_dict()
    extra = {**loaded.metadata.get("extra", {}), "adaptation": record}
    save_model(
        loaded.model, model_path, train_config=loaded.train_config, normalizer=loaded.normalizer, extra=extra,
        input_shift=offset.input_shift, flipped_input_shift=offset.flipped_input_shift,
    )  # fmt: skip
    return offset


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
    **calibrate_options: Any,
) -> AdaptResult:
    """Calibrate on the scans, simulate ``pairs`` matched pairs and fine-tune ``init`` into ``out`` (module doc),
    all within ``minutes`` (the fine-tuning gets what the calibration and simulation left). ``on_calibrated``
    receives the calibration before the fine-tuning starts; ``on_preview(epoch, prediction)`` the prediction of the
    first scan (what the adapted model makes of it) after an epoch, within :data:`PREVIEW_SHARE` of the time;
    ``sources`` name the scans in the model's metadata."""
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
    report(Progress(0, None, f"simulating {pairs} matched pairs {shape}"))
    train_pairs = simulate_matched_pairs(cal, shape, pairs, jitter=jitter, seed=seed, psf=psf_array)
    val_pair = simulate_matched_pairs(cal, shape, 1, jitter=0.0, seed=seed + 10_000, psf=psf_array)[0]
    spent_s = time.monotonic() - started
    left_s = minutes * 60 - spent_s - FINISH_S
    if left_s < MIN_FINE_TUNE_S:
        warnings.warn(
            f"the {minutes * 60:.0f}-s budget, less {spent_s:.0f} s of calibrating and simulating and {FINISH_S:.0f} s "
            f"kept for saving, leaves the fine-tuning under its minimum of {MIN_FINE_TUNE_S:.0f} s, so the run ends "
            "late (give more minutes)",
            stacklevel=2,
        )
    config = replace(config, minutes=max(left_s, MIN_FINE_TUNE_S) / 60)
    from voxelstudio.ml.fit import checkpoint_paths

    try:
        result = train_denoiser(
            train_pairs, config=config, out=out, val_pairs=[val_pair], report=report, cancel=cancel, init=init,
            on_preview=on_preview, preview_input=volumes[0] if on_preview is not None else None,
            preview_share=PREVIEW_SHARE,
        )  # fmt: skip
    finally:  # adapt has no --resume: the fine-tuning's checkpoint is of no use, whatever ended it
        for checkpoint in checkpoint_paths(out):
            checkpoint.unlink(missing_ok=True)
    offset = None
    if result.model_path is not None:
        report(Progress(0, None, "measuring where the model puts beads"))
        names = sources or [v.source or v.name for v in volumes]
        psf_name = None if psf is None else str(Path(psf).resolve())
        offset = _store_adaptation(result.model_path, cal, names, psf_name, shape=shape, seed=seed, psf_array=psf_array)
    return AdaptResult(cal, result, offset)
