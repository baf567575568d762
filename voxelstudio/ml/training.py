"""Training a denoiser on (raw, target) volume pairs with progress, cancel, a time budget, checkpoints and resume.

Inputs are percentile-normalised per volume; targets are mapped to [0, 1] with the training set's target range (the
normaliser is stored with the model). Patches are drawn lazily (``patches.PatchSampler``). Each epoch the validation
volumes are predicted whole (a few fixed patches when large) for ``val_loss``/``val_psnr``; the best model by that
loss is kept at ``out_path`` and the last epoch (at most every 30 s, and at the run's end) at ``<out stem>.last.keras``
with ``<out stem>.last.json`` holding the training state (epoch, best loss, learning rate, history), so
``resume=True`` continues where it stopped (weights and Adam moments restored; the early-stopping and
learning-rate-plateau counters start afresh).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from voxelstudio.core.atomic import write_json_atomically
from voxelstudio.core.errors import ModelError
from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.core.progress import CancelToken, ReportFn, null_report
from voxelstudio.ml.backend import jit_compile
from voxelstudio.ml.callbacks import RunState, ValidationCallback
from voxelstudio.ml.config import TrainConfig
from voxelstudio.ml.denoisers import build_denoiser, required_multiple
from voxelstudio.ml.fit import (
    SaveFn,
    checkpoint_note,
    checkpoint_paths,
    finite,
    fit_scope,
    restore_run_state,
    resume_checkpoint,
    run_fit,
    training_state,
)
from voxelstudio.ml.inference import plan_prediction, predict_unit
from voxelstudio.ml.losses import get_loss
from voxelstudio.ml.patches import PatchSampler
from voxelstudio.ml.persistence import file_sha256, load_model, save_model
from voxelstudio.ml.spacing import PairSpacings, Spacing, check_spacings, features_batch

Pair = tuple[np.ndarray, np.ndarray]
VAL_PATCHES = 4
"""Fixed validation patches per volume when a validation volume is larger than VAL_MAX_PATCH_VOLUMES patches."""
VAL_MAX_PATCH_VOLUMES = 8


@dataclass(frozen=True)
class TrainOutcome:
    """What a training run produced. ``epochs_run`` counts all epochs of the model, resumed ones included."""

    history: dict[str, list[float]]
    best_val_loss: float
    epochs_run: int
    stopped_reason: str  # "epochs" | "time" | "early_stopping" | "cancelled"
    model_path: Path | None


class PatchDataset(keras.utils.PyDataset):
    """``steps`` batches per epoch of random patches; one seeded generator consumed in order (deterministic).

    ``spacings`` (one voxel size per pair of the sampler) makes the inputs ``(x, spacing features)`` for a
    spacing-conditioned model."""

    def __init__(
        self,
        sampler: PatchSampler,
        batch_size: int,
        steps: int,
        seed: Sequence[int],
        spacings: Sequence[Spacing] | None = None,
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.sampler = sampler
        self.batch_size = batch_size
        self.steps = steps
        self.rng = np.random.default_rng(list(seed))
        self.features = None if spacings is None else features_batch(spacings)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray]:
        indices, x, y = self.sampler.indexed_batch(self.batch_size, self.rng)
        if self.features is None:
            return x[..., None], y[..., None]
        return (x[..., None], self.features[indices]), y[..., None]


def memory_advice(cfg: TrainConfig, checkpoint: Path) -> str:
    """What failed when training ran out of memory, what to try, and whether a checkpoint is kept (one line)."""
    smaller = ",".join(str(max(4, n // 2)) for n in cfg.patch_shape)
    return (
        f"out of memory training batches of {cfg.batch_size} patches of {'x'.join(map(str, cfg.patch_shape))} "
        f"voxels; try --batch-size {max(1, cfg.batch_size // 2)} or --patch {smaller} ({checkpoint_note(checkpoint)})"
    )


def fit_normalizer(targets: Sequence[np.ndarray]) -> PercentileNormalizer:
    """Input percentiles 2/99.8; output range = the targets' global min and max."""
    low = min(float(np.min(t)) for t in targets)
    high = max(float(np.max(t)) for t in targets)
    if not high > low:
        raise ValueError(f"training targets are constant ({low}); nothing to learn")
    return PercentileNormalizer(out_low=low, out_high=high)


class Validator:
    """Predicts the validation set: whole volumes, or fixed patches of large ones; computes loss and PSNR.

    ``spacings`` (one per pair) and ``preview_spacing`` are the voxel sizes a spacing-conditioned model needs."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        cfg: TrainConfig,
        loss: Any,
        *,
        preview_source: np.ndarray,
        to_output: Callable[[np.ndarray], np.ndarray],
        spacings: Sequence[Spacing | None] | None = None,
        preview_spacing: Spacing | None = None,
    ) -> None:
        self.cfg, self.loss, self.to_output = cfg, loss, to_output
        self.items: list[tuple[np.ndarray, np.ndarray, Spacing | None]] = []
        patch_voxels = math.prod(cfg.patch_shape)
        multiple = required_multiple(cfg.model)
        spacings = list(spacings) if spacings is not None else [None] * len(pairs)
        for index, ((x, y), spacing) in enumerate(zip(pairs, spacings, strict=True)):
            if x.size <= VAL_MAX_PATCH_VOLUMES * patch_voxels:
                self.items.append((x, y, spacing))
                continue
            sampler = PatchSampler(
                [(x, y)], cfg.patch_shape, bead_bias=cfg.bead_bias, threshold=cfg.loss.threshold, augment=False,
                multiple=multiple,
            )  # fmt: skip
            xs, ys = sampler.batch(VAL_PATCHES, np.random.default_rng([cfg.seed, index]))
            self.items.extend((a, b, spacing) for a, b in zip(xs, ys, strict=True))
        self.preview_source, self.preview_spacing = preview_source, preview_spacing

    def predict(self, model: keras.Model, x: np.ndarray, spacing: Spacing | None) -> np.ndarray:
        plan = plan_prediction(self.cfg.model, x.shape)
        return predict_unit(model, self.cfg.model, x, plan=plan, spacing=spacing)[0]

    def __call__(self, model: keras.Model, want_preview: bool) -> tuple[float, float, np.ndarray | None]:
        losses, errors, predictions = [], [], []
        for x, y, spacing in self.items:
            prediction = self.predict(model, x, spacing)
            predictions.append(prediction)
            losses.append(float(self.loss(y[None, ..., None], prediction[None, ..., None])))
            errors.append(float(np.mean((prediction - y) ** 2)))
        loss = float(np.mean(losses)) if losses else math.nan
        psnr = 10.0 * math.log10(1.0 / max(float(np.mean(errors)), 1e-12)) if errors else math.nan
        preview = None
        if want_preview:
            first = self.items[0][0] if self.items else None
            same = first is not None and first is self.preview_source
            if same:
                preview = self.to_output(predictions[0])
            else:
                preview = self.to_output(self.predict(model, self.preview_source, self.preview_spacing))
        return loss, psnr, preview


def denoiser_savers(
    out_path: Path,
    cfg: TrainConfig,
    normalizer: PercentileNormalizer,
    monitor: str,
    extra: dict[str, Any] | None = None,
) -> tuple[SaveFn, SaveFn]:
    """(save_best, save_last) for a denoiser run: the best model at ``out_path``; the last epoch, with its optimizer
    state and the training state (in its metadata and in ``<stem>.last.json``), beside it. ``extra`` goes into both."""
    last_path, state_path = checkpoint_paths(out_path)
    extra = dict(extra or {})

    def save_best(model: keras.Model, state: RunState) -> None:
        best = {"best_epoch": state.best_epoch, "best_" + monitor: finite(state.best)}
        save_model(model, out_path, train_config=cfg, normalizer=normalizer, extra={**extra, **best})

    def save_last(model: keras.Model, state: RunState) -> None:
        learning_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        data = training_state(state, monitor=monitor, learning_rate=learning_rate)
        save_model(
            model, last_path, train_config=cfg, normalizer=normalizer, extra={**extra, "training_state": data},
            optimizer_state=True,
        )  # fmt: skip
        write_json_atomically(state_path, {**data, "checkpoint_sha256": file_sha256(last_path)})

    return save_best, save_last


def compiled_denoiser(cfg: TrainConfig) -> tuple[keras.Model, Any]:
    """``cfg``'s denoiser compiled with Adam at its learning rate and its loss: (model, loss). Build it inside
    :func:`~voxelstudio.ml.fit.fit_scope`."""
    model = build_denoiser(cfg.model)
    loss = get_loss(cfg.loss)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=loss, jit_compile=jit_compile())
    return model, loss


def learning_rate_schedule(cfg: TrainConfig, monitor: str) -> keras.callbacks.Callback:
    """Halve the learning rate when ``monitor`` has not improved for ``cfg.lr_patience`` epochs."""
    return keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=cfg.lr_patience, verbose=0)


def run_denoiser_fit(
    model: keras.Model,
    dataset: keras.utils.PyDataset,
    state: RunState,
    cfg: TrainConfig,
    out_path: Path,
    savers: tuple[SaveFn, SaveFn],
    *,
    monitor: str,
    report: ReportFn,
    cancel: CancelToken | None,
    callbacks: Sequence[keras.callbacks.Callback],
) -> str:
    """:func:`~voxelstudio.ml.fit.run_fit` for a denoiser: ``cfg``'s time budget (which the progress follows) and the
    out-of-memory advice that names its batch and patch sizes; returns why training stopped."""
    save_best, save_last = savers
    return run_fit(
        model, dataset, state, monitor=monitor, save_best=save_best, save_last=save_last, report=report,
        cancel=cancel, minutes=cfg.minutes, callbacks=callbacks,
        out_of_memory=lambda: memory_advice(cfg, checkpoint_paths(out_path)[0]),
    )  # fmt: skip


def resume_denoiser(
    model: keras.Model, cfg: TrainConfig, out_path: Path, monitor: str
) -> tuple[dict[str, Any], PercentileNormalizer]:
    """Continue the last checkpoint beside ``out_path`` in ``model`` (weights, optimizer state, learning rate);
    returns (its training state, its normaliser)."""
    saved, checkpoint = resume_checkpoint(
        model, out_path, load=load_model,
        same_model=lambda loaded: loaded.train_config is not None and loaded.train_config.model == cfg.model,
        monitor=monitor,
    )  # fmt: skip
    model.optimizer.learning_rate.assign(saved["learning_rate"])
    return saved, checkpoint.normalizer


def load_init_weights(model: keras.Model, init: str | Path) -> None:
    """Start from ``init``'s weights (fine-tuning); its architecture must match ``model``'s."""
    source = load_model(init).model
    if [tuple(w.shape) for w in source.weights] != [tuple(w.shape) for w in model.weights]:
        raise ModelError(init, "has another architecture than the model being trained; --init needs the same one")
    model.set_weights(source.get_weights())


def fit_denoiser(
    pairs_train: Sequence[Pair],
    pairs_val: Sequence[Pair],
    cfg: TrainConfig,
    *,
    out_path: str | Path,
    resume: bool = False,
    init: str | Path | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
    on_preview: Callable[[int, np.ndarray], None] | None = None,
    preview_every: int = 1,
    preview_share: float = 1.0,
    preview_input: np.ndarray | None = None,
    spacings: PairSpacings | None = None,
) -> TrainOutcome:
    """Train ``cfg``'s denoiser; the best model (by validation loss, else training loss) is saved at ``out_path``.

    ``spacings``: the voxel sizes (y, x, z µm) of the training pairs, of the validation pairs and of the preview
    input; a spacing-conditioned model (``cfg.model.spacing_input``) needs them, others ignore them.
    ``init``: a model file whose weights training starts from (same architecture), instead of random ones.
    ``on_preview(epoch, prediction)`` sees the prediction of the first validation volume, or of ``preview_input``
    (a raw volume in the data's units, e.g. the scan a model is being adapted to) when given, every
    ``preview_every`` epochs but within ``preview_share`` of the time (see ``ValidationCallback``).
    """
    cfg.validate()
    if resume and init is not None:
        raise ValueError("resume continues a checkpoint; it cannot start from another model (init) as well")
    if not pairs_train:
        raise ValueError("no training pairs")
    spacings = check_spacings(
        cfg.model.spacing_input, spacings, len(pairs_train), len(pairs_val), preview_input is not None
    )
    if cancel is not None:
        cancel.raise_if_cancelled("training")
    out_path = Path(out_path)
    with fit_scope(cfg.seed, mixed_precision=cfg.mixed_precision):
        model, loss = compiled_denoiser(cfg)
        saved: dict[str, Any] = {}
        normalizer = fit_normalizer([t for _, t in pairs_train])
        monitor = "val_loss" if pairs_val else "loss"
        if resume:
            saved, normalizer = resume_denoiser(model, cfg, out_path, monitor)
        elif init is not None:
            load_init_weights(model, init)

        def prepare(pairs: Sequence[Pair]) -> list[Pair]:
            return [(normalizer.before(r), normalizer.target_to_unit(t)) for r, t in pairs]

        train, val = prepare(pairs_train), prepare(pairs_val)
        sampler = PatchSampler(
            train, cfg.patch_shape, bead_bias=cfg.bead_bias, threshold=cfg.loss.threshold, augment=cfg.augment,
            multiple=required_multiple(cfg.model),
        )  # fmt: skip
        state = restore_run_state(saved, cfg.epochs, cfg.steps_per_epoch)
        seed = (cfg.seed, state.initial_epoch)
        dataset = PatchDataset(sampler, cfg.batch_size, cfg.steps_per_epoch, seed, spacings and spacings.train)
        savers = denoiser_savers(out_path, cfg, normalizer, monitor, spacings and spacings.extra())
        previewed = (val or train)[0][0] if preview_input is None else normalizer.before(preview_input)
        validator = Validator(
            val, cfg, loss, preview_source=previewed, to_output=normalizer.after,
            spacings=spacings and spacings.val, preview_spacing=spacings and spacings.preview_or_first(),
        )  # fmt: skip
        callbacks: list[keras.callbacks.Callback] = []
        if val or on_preview is not None:
            callbacks.append(ValidationCallback(
                state, validator, on_preview=on_preview, preview_every=preview_every, preview_share=preview_share
            ))  # fmt: skip
        callbacks += [
            learning_rate_schedule(cfg, monitor),
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=cfg.early_stopping_patience, restore_best_weights=True
            ),
        ]
        reason = run_denoiser_fit(model, dataset, state, cfg, out_path, savers, monitor=monitor, report=report,
                                  cancel=cancel, callbacks=callbacks)  # fmt: skip
        history = {k: list(v) for k, v in state.history.items()}
        return TrainOutcome(history, state.best, state.epochs_run, reason, out_path if out_path.exists() else None)
