"""Training a denoiser on freshly simulated patches (``PatchStream`` batches) for ``train_default_model.py
--generator``: no fixed training set, every patch a new random microscope.

The fit itself is :func:`voxelstudio.ml.generated_training.fit_denoiser_on_generated` (the shared fit harness: best
model by validation loss, last checkpoint with resume, progress, cancel, time budget); validation is a fixed set of
simulated batches from another seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

from voxelstudio.core.progress import ReportFn, null_report
from voxelstudio.ml.config import TrainConfig
from voxelstudio.sim.params import OpticsParams
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


def train_from_generator(
    config: TrainConfig,
    out: Path,
    *,
    workers: int,
    cache_dir: str | None,
    microscopes: int = 256,
    optics_prior: str = "uniform",
    resume: bool = False,
    init: Path | None = None,
    report: ReportFn = null_report,
) -> GeneratorRun:
    """Train ``config``'s denoiser on ``config.steps_per_epoch`` fresh batches per epoch for ``config.epochs``
    epochs or ``config.minutes``, from random weights or ``init``'s; the best model by validation loss goes to
    ``out``."""
    from voxelstudio.ml.generated_training import fit_denoiser_on_generated
    from voxelstudio.ml.sim_dataset import CACHE_MISSES, SimulatedPatches, hit_rate

    stream = PatchStream(
        patch_shape=config.patch_shape,
        batch_size=config.batch_size,
        seed=config.seed,
        microscopes=microscopes,
        cache_dir=cache_dir,
        optics_prior=optics_prior,
    )
    validation_stream = dataclasses.replace(stream, seed=config.seed + VALIDATION_SEED_OFFSET)
    conditioned = config.model.spacing_input
    validation = [SimulatedPatches(validation_stream, spacing_input=conditioned)[i] for i in range(VALIDATION_BATCHES)]
    extra: dict[str, Any] = {
        "generator": {"stream": {k: v for k, v in dataclasses.asdict(stream).items() if k != "cache_dir"}}
    }
    if init is not None:  # more training for an earlier model: say which
        extra["init"] = {"file": init.name, "sha256": _sha256(init)}
    if conditioned:  # every patch draws its voxel size from the simulator's ranges
        ranges = OpticsParams.ranges()
        extra["spacing_range"] = {"lateral": list(ranges["pixel_um"]), "axial": list(ranges["z_step_um"])}
    started = time.perf_counter()
    outcome = fit_denoiser_on_generated(
        stream,
        validation,
        config,
        out_path=out,
        workers=workers,
        resume=resume,
        init=init,
        normalizer=stream.normalizer,
        extra=extra,
        report=report,
    )
    return GeneratorRun(
        epochs=outcome.epochs_run,
        best_val_loss=outcome.best_val_loss,
        seconds=time.perf_counter() - started,
        patches=outcome.samples_made,
        psf_hit_rate=hit_rate(outcome.counts),
        psfs_computed=outcome.counts.get(CACHE_MISSES, 0),
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
