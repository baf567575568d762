"""Training a denoiser on freshly generated batches (e.g. simulated patches): no fixed training set.

Every batch comes from ``make_batch(key)`` (see :class:`~voxelstudio.ml.sim_dataset.SimulatedPatches`; the key is
``epoch * steps_per_epoch + batch``, so a resumed run goes on with new batches rather than the first epoch's; the
backends' loaders peek a batch and may count an extra epoch, so the exact keys differ by backend) in ``workers``
processes.
The patches arrive normalised (inputs by the generator's percentiles, targets in [0, 1]), so the saved model carries
the default :class:`~voxelstudio.core.normalize.PercentileNormalizer`. Validation is a fixed set of batches made with
another key range. The fit harness (:mod:`voxelstudio.ml.fit`) gives it everything the pair trainer has: the best
model by validation loss, the last checkpoint with its optimizer state, resume, progress, cancel and a time budget;
a worker that dies stops the run with its error and the last checkpoint kept.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.core.progress import CancelToken, ReportFn, null_report
from voxelstudio.ml.callbacks import ValidationCallback
from voxelstudio.ml.config import TrainConfig
from voxelstudio.ml.fit import fit_scope, restore_run_state
from voxelstudio.ml.sim_dataset import BatchFn, SimulatedPatches
from voxelstudio.ml.training import (
    compiled_denoiser,
    denoiser_savers,
    learning_rate_schedule,
    load_init_weights,
    resume_denoiser,
    run_denoiser_fit,
)


@dataclass(frozen=True)
class GeneratedOutcome:
    """What a run on generated batches produced; ``counts`` sums the generator's counters (e.g. PSF cache hits)."""

    history: dict[str, list[float]]
    best_val_loss: float
    epochs_run: int
    stopped_reason: str
    model_path: Path | None
    samples_made: int
    counts: dict[str, int]


class BatchValidator:
    """``(model, want_preview) -> (loss, psnr, None)`` on fixed (x, y) batches (channels last; x is (volumes,
    spacing features) for a spacing-conditioned model)."""

    def __init__(self, batches: Sequence[tuple[Any, np.ndarray]], loss: Any) -> None:
        self.batches, self.loss = list(batches), loss

    def __call__(self, model: keras.Model, want_preview: bool) -> tuple[float, float, None]:
        losses, errors = [], []
        for x, y in self.batches:
            prediction = keras.ops.convert_to_numpy(model(x, training=False)).astype(np.float32)
            losses.append(float(keras.ops.convert_to_numpy(self.loss(y, prediction))))
            errors.append(float(np.mean((prediction - y) ** 2)))
        if not losses:
            return math.nan, math.nan, None
        return float(np.mean(losses)), 10.0 * math.log10(1.0 / max(float(np.mean(errors)), 1e-12)), None


def fit_denoiser_on_generated(
    make_batch: BatchFn,
    validation: Sequence[tuple[Any, np.ndarray]],
    cfg: TrainConfig,
    *,
    out_path: str | Path,
    workers: int = 0,
    resume: bool = False,
    init: str | Path | None = None,
    normalizer: PercentileNormalizer | None = None,
    extra: dict[str, Any] | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> GeneratedOutcome:
    """Train ``cfg``'s denoiser for ``cfg.epochs`` epochs of ``cfg.steps_per_epoch`` generated batches (or
    ``cfg.minutes``); ``validation`` holds fixed (x, y) batches with a channel axis (x: (volumes, spacing features)
    for a spacing-conditioned model, whose batch function gives the voxel sizes). ``normalizer`` is the one the
    generator normalised its inputs with (saved with the model; default percentiles otherwise); ``extra`` goes into
    the model's metadata (e.g. how the batches were generated). ``init``: a model file of the same architecture
    whose weights training starts from (e.g. more training for the bundled model), instead of random ones."""
    cfg.validate()
    if resume and init is not None:
        raise ValueError("resume continues a checkpoint; it cannot start from another model (init) as well")
    if cancel is not None:
        cancel.raise_if_cancelled("training")
    out_path = Path(out_path)
    with fit_scope(cfg.seed, mixed_precision=cfg.mixed_precision):
        model, loss = compiled_denoiser(cfg)
        saved: dict[str, Any] = {}
        normalizer = normalizer or PercentileNormalizer()
        monitor = "val_loss" if validation else "loss"
        if resume:
            saved, normalizer = resume_denoiser(model, cfg, out_path, monitor)
        elif init is not None:
            load_init_weights(model, init)
        state = restore_run_state(saved, cfg.epochs, cfg.steps_per_epoch)
        savers = denoiser_savers(out_path, cfg, normalizer, monitor, extra)
        callbacks: list[keras.callbacks.Callback] = []
        if validation:
            callbacks.append(ValidationCallback(state, BatchValidator(validation, loss)))
        callbacks.append(learning_rate_schedule(cfg, monitor))
        data = SimulatedPatches.for_training(
            make_batch, batches=cfg.steps_per_epoch, workers=workers, epoch=state.initial_epoch,
            spacing_input=cfg.model.spacing_input,
        )  # fmt: skip
        with data.raising_own_errors():
            reason = run_denoiser_fit(model, data, state, cfg, out_path, savers, monitor=monitor,
                                      report=report, cancel=cancel, callbacks=callbacks)  # fmt: skip
        history = {k: list(v) for k, v in state.history.items()}
        return GeneratedOutcome(
            history, state.best, state.epochs_run, reason, out_path if out_path.exists() else None,
            data.samples_made, dict(Counter(data.counts)),
        )  # fmt: skip
