"""Training a denoiser on freshly simulated patches (``SimulatedPatches`` over ``PatchStream``) for
``train_default_model.py --generator``: no fixed training set, every patch a new random microscope.

Validation is a fixed set of simulated patches from another seed; the model with the best validation loss is saved
(with the normaliser every simulated patch used: percentiles 2/99.8 of the raw volume, targets in [0, 1]).
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.ml.config import TrainConfig
from voxelstudio.ml.denoisers import build_denoiser
from voxelstudio.ml.losses import get_loss
from voxelstudio.ml.persistence import save_model
from voxelstudio.ml.sim_dataset import SimulatedPatches
from voxelstudio.sim.stream import PatchStream

VALIDATION_SEED_OFFSET = 10_000
VALIDATION_BATCHES = 4


@dataclasses.dataclass(frozen=True)
class GeneratorRun:
    epochs: int
    best_val_loss: float
    seconds: float
    patches: int
    psf_hit_rate: float
    psfs_computed: int


class _Deadline(keras.callbacks.Callback):
    def __init__(self, seconds: float | None) -> None:
        super().__init__()
        self.end = None if seconds is None else time.monotonic() + seconds

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.end is not None and time.monotonic() > self.end:
            self.model.stop_training = True


class _SaveBest(keras.callbacks.Callback):
    def __init__(self, out: Path, config: TrainConfig, extra: dict[str, Any]) -> None:
        super().__init__()
        self.out, self.config, self.extra = out, config, extra
        self.best, self.epochs = math.inf, 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs = epoch + 1
        loss = float((logs or {}).get("val_loss", math.inf))
        if loss < self.best:
            self.best = loss
            extra = {**self.extra, "best_epoch": epoch + 1, "best_val_loss": loss}
            save_model(self.model, self.out, train_config=self.config, normalizer=PercentileNormalizer(), extra=extra)


def train_from_generator(
    config: TrainConfig, out: Path, *, workers: int, cache_dir: str | None, microscopes: int = 256
) -> GeneratorRun:
    """Train ``config``'s denoiser on ``config.steps_per_epoch`` fresh batches per epoch for ``config.epochs``
    epochs or ``config.minutes``; the best model by validation loss goes to ``out``."""
    config.validate()
    keras.utils.set_random_seed(config.seed)
    stream = PatchStream(
        patch_shape=config.patch_shape,
        batch_size=config.batch_size,
        seed=config.seed,
        microscopes=microscopes,
        cache_dir=cache_dir,
    )
    validation = dataclasses.replace(stream, seed=config.seed + VALIDATION_SEED_OFFSET)
    x_val, y_val = zip(*(SimulatedPatches(validation)[i] for i in range(VALIDATION_BATCHES)), strict=True)
    model = build_denoiser(config.model)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=get_loss(config.loss), jit_compile=False)
    extra = {"generator": {"stream": {k: v for k, v in dataclasses.asdict(stream).items() if k != "cache_dir"}}}
    save_best = _SaveBest(out, config, extra)
    callbacks = [
        save_best,
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=config.lr_patience, verbose=0),
        _Deadline(None if config.minutes is None else config.minutes * 60),
    ]
    started = time.perf_counter()
    queue = 2 * workers + 2
    with SimulatedPatches(stream, workers=workers, use_multiprocessing=workers > 0, max_queue_size=queue) as data:
        model.fit(
            data,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
            validation_data=(np.concatenate(x_val), np.concatenate(y_val)),
            validation_batch_size=config.batch_size,
            callbacks=callbacks,
            shuffle=False,
            verbose=0,
        )
        gc.collect()  # finalise tf.data's generator iterator now, not at interpreter exit (where TF logs an error)
        return GeneratorRun(
            epochs=save_best.epochs,
            best_val_loss=save_best.best,
            seconds=time.perf_counter() - started,
            patches=data.samples_made,
            psf_hit_rate=data.rate(),
            psfs_computed=data.counts["cache_misses"],
        )
