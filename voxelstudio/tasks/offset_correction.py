"""Where a trained denoiser puts beads, and the input shift that puts them back.

A denoiser trained on beads whose point-spread function has a long tail along z learns to undo only part of the
elongation's shift: the bundled model puts the sample's beads 0.5-0.65 planes deep, a model fine-tuned on one
microscope up to 0.9 (benchmarks/README.md, "Where the adapted model puts beads"). Measured on pairs whose truth is
known (a training run's validation pairs; adapt's pairs simulated with the calibrated parameters), the offset is
stored in the model as the opposite shift (``persistence.LoadedModel.input_shift``), which every prediction with it
applies to the scan before the network; the z-flipped views of test-time augmentation get a shift of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.progress import CancelToken
from voxelstudio.core.volume import Volume

MIN_OFFSET_BEADS = 20
"""Fewer beads measured than this: no correction (the median of so few is not a systematic offset)."""
MIN_CORRECTED_OFFSET = 0.25
"""An axis is corrected when the model's beads sit at least this far (voxels) from the truth along it: models
without an offset measured within 0.1 voxel, and a repeated measurement moved by up to 0.13 (benchmarks/README.md,
"Where the adapted model puts beads")."""
MEASURED_PAIRS, MEASURED_LATERAL = 3, 256
"""A training run measures on at most this many validation pairs, each cut to its middle 256 x 256 voxels across:
a few seconds of prediction on a CPU (two views) whatever the size of the user's volumes."""
METADATA_KEY = "bead_offset"
"""Where a trained model's metadata records the measurement (``extra["bead_offset"]``)."""


@dataclass(frozen=True)
class BeadOffset:
    """Where a model puts beads on pairs whose truth is known (``source``: which), and the correction."""

    measured: tuple[float, float, float]
    """Median position of the model's beads minus the truth's, voxels (y, x, z)."""
    beads: int
    input_shift: tuple[float, float, float]
    """What prediction moves scans by (``persistence.LoadedModel.input_shift``); zero on uncorrected axes."""
    flipped_measured: tuple[float, float, float] | None = None
    """The same for the model's prediction of the scan flipped along z (flipped back), as test-time augmentation
    makes it: a model fine-tuned on one microscope puts those beads elsewhere (1.35 planes against 0.63)."""
    flipped_input_shift: tuple[float, float, float] | None = None
    source: str = "simulated"
    """The beads measured, as the summary names them: "simulated" (adapt) or "validation" (training)."""
    spacing_um: tuple[float, float, float] | None = None
    """The voxel size (y, x, z µm) the voxels above are of (``persistence.LoadedModel.shift_spacing``): scans of
    another voxel size are moved by as many µm; None when the pairs' voxel size was not known."""

    @property
    def corrects(self) -> bool:
        """True when predictions with the model move the scan (some axis is off by the threshold or more)."""
        return any(self.input_shift) or any(self.flipped_input_shift or ())

    def summary(self) -> str:
        """One sentence for the CLI and the window."""
        moved = ", ".join(f"{v:+.2f}" for v in self.measured)
        if self.beads < MIN_OFFSET_BEADS:
            return f"Bead positions: not corrected ({self.beads} {self.source} beads, {MIN_OFFSET_BEADS} needed)."
        flipped = self.flipped_input_shift
        tta = "" if flipped is None or flipped == self.input_shift else (
            f" Test-time augmentation's z-flipped views are moved by {', '.join(f'{v:+.2f}' for v in flipped)}."
            if any(flipped) else " Test-time augmentation's z-flipped views are not moved."
        )  # fmt: skip
        if not any(self.input_shift):
            return (
                f"Bead positions: within {MIN_CORRECTED_OFFSET} voxel of the truth on {self.beads} {self.source} "
                f"beads (y, x, z {moved}).{tta}"
            )
        shift = ", ".join(f"{v:+.2f}" for v in self.input_shift)
        return (
            f"Bead positions: the model moved beads by (y, x, z) {moved} voxels on {self.beads} {self.source} "
            f"beads; predictions move the scan by {shift} to put them back.{tta}"
        )

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "measured_vox": list(self.measured), "beads": self.beads, "input_shift_vox": list(self.input_shift),
            "source": self.source,
        }  # fmt: skip
        if self.flipped_measured is not None and self.flipped_input_shift is not None:
            record["flipped_measured_vox"] = list(self.flipped_measured)
            record["flipped_input_shift_vox"] = list(self.flipped_input_shift)
        if self.spacing_um is not None:
            record["spacing_um"] = list(self.spacing_um)
        return record


def bead_offset_of(
    predict: Callable[[Volume], np.ndarray], pairs: Sequence[tuple[Volume, Volume]], source: str = "simulated"
) -> BeadOffset:
    """Where ``predict`` puts the beads of the (raw, target) ``pairs`` relative to the targets' (the median over
    all beads), and the input shift that puts them back on the axes where they are off by
    :data:`MIN_CORRECTED_OFFSET` or more (none with fewer than :data:`MIN_OFFSET_BEADS` beads). When every pair's
    voxel size is known, the median is taken in µm and given in voxels of the pairs' median voxel size."""
    from voxelstudio.metrics.bead_offset import bead_shifts, median_offset

    spacings = [raw.known_spacing for raw, _ in pairs]
    known = bool(pairs) and all(spacing is not None for spacing in spacings)
    per_pair = [bead_shifts(predict(raw), target.data, raw.spacing) for raw, target in pairs]
    if known:
        spacing = np.median(np.asarray(spacings, dtype=np.float64), axis=0)
        shifts = np.concatenate([s * np.asarray(size) for s, size in zip(per_pair, spacings, strict=True)]) / spacing
    else:
        shifts = np.concatenate(per_pair) if per_pair else np.zeros((0, 3))
    measured = median_offset(shifts)
    correct = len(shifts) >= MIN_OFFSET_BEADS and np.abs(measured) >= MIN_CORRECTED_OFFSET
    shift = np.where(correct, -measured, 0.0)
    spacing_um = _rounded(spacing, 6) if known else None
    return BeadOffset(_rounded(measured), len(shifts), _rounded(shift), source=source, spacing_um=spacing_um)


def model_bead_offset(
    loaded: Any, pairs: Sequence[tuple[Volume, Volume]], source: str, *, cancel: CancelToken | None = None
) -> BeadOffset:
    """:func:`bead_offset_of` the model ``loaded`` (``persistence.LoadedModel``, predicting without any shift it
    carries) on ``pairs``, for its plain prediction and for the z-flipped view of test-time augmentation;
    :class:`~voxelstudio.core.errors.Cancelled` when ``cancel`` is set before it ends."""
    from voxelstudio.ml.inference import forward_transform, inverse_transform, predict_volume

    bare = replace(loaded, input_shift=(0.0, 0.0, 0.0), flipped_input_shift=None)

    def predict(data: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        if cancel is not None:  # prediction checks between tiles; a volume of one tile would not look
            cancel.raise_if_cancelled("bead position measurement")
        return predict_volume(bare, data, spacing=spacing, cancel=cancel)[0]

    plain = bead_offset_of(lambda raw: predict(raw.data, raw.spacing), pairs, source)

    def flipped(raw: Volume) -> np.ndarray:  # the z-flipped view of test-time augmentation, turned back
        return inverse_transform(predict(forward_transform(raw.data, 0, True), raw.spacing), 0, True)

    other = bead_offset_of(flipped, pairs, source)
    return replace(plain, flipped_measured=other.measured, flipped_input_shift=other.input_shift)


def save_with_offset(loaded: Any, path: Path, offset: BeadOffset | None, extra: dict[str, Any]) -> None:
    """Rewrite the model file at ``path`` (``loaded`` from it) with ``offset``'s correction (None: none, whatever
    ``loaded`` had) and ``extra`` as its metadata's ``extra``."""
    from voxelstudio.ml.persistence import save_model

    save_model(
        loaded.model, path, train_config=loaded.train_config, normalizer=loaded.normalizer, extra=extra,
        input_shift=None if offset is None else offset.input_shift,
        flipped_input_shift=None if offset is None else offset.flipped_input_shift,
        shift_spacing=None if offset is None else offset.spacing_um,
    )  # fmt: skip


def correct_trained_model(
    path: Path, val_pairs: Sequence[tuple[Volume, Volume]], *, cancel: CancelToken | None = None
) -> BeadOffset:
    """Measure where the model trained into ``path`` puts the beads of its validation pairs (at most
    :data:`MEASURED_PAIRS`, each cut to :data:`MEASURED_LATERAL` voxels across) and, when it moves them
    (:attr:`BeadOffset.corrects`), rewrite it with the correction and the measurement (``extra["bead_offset"]``).
    :class:`~voxelstudio.core.errors.Cancelled`, with the file as it was, when ``cancel`` is set before it ends."""
    from voxelstudio.ml.persistence import load_model

    loaded = load_model(path)
    pairs = [(_central(raw), _central(target)) for raw, target in val_pairs[:MEASURED_PAIRS]]
    offset = model_bead_offset(loaded, pairs, "validation", cancel=cancel)
    if cancel is not None:
        cancel.raise_if_cancelled("bead position measurement")
    if offset.corrects:
        extra = {**loaded.metadata.get("extra", {}), METADATA_KEY: offset.to_dict()}
        save_with_offset(loaded, path, offset, extra)
    return offset


def _central(volume: Volume) -> Volume:
    """The middle :data:`MEASURED_LATERAL` x :data:`MEASURED_LATERAL` voxels of ``volume`` (all its planes)."""
    y, x = (slice(start := max((n - MEASURED_LATERAL) // 2, 0), start + MEASURED_LATERAL) for n in volume.shape[:2])
    return volume.replace(data=np.asarray(volume.data)[y, x])


def _rounded(values: np.ndarray, digits: int = 3) -> tuple[float, float, float]:
    y, x, z = (round(float(v), digits) + 0.0 for v in values)  # + 0.0: no -0.0 in the file
    return y, x, z
