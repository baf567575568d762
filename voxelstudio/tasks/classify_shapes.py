"""Training a classifier on procedural shapes made afresh for every batch: no fixed training set (the bundled
classifier's recipe, issue 13).

The training batches come from :class:`~voxelstudio.sim.shapes.ShapeStream` (random proportions, sizes, positions,
rotations, hollowing and noise; a share made harder: surface only and/or partly occluded), made by worker processes,
posed and augmented where they are made. Validation and test sets are generated once from seeds of their own, with
the same share of hard grids. Qt-free; TensorFlow is imported only inside the functions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.sim.shapes import SHAPE_CLASSES, ShapeStream, generate_shapes, harden_grid
from voxelstudio.tasks.classifier_domain import store_domain
from voxelstudio.tasks.classify_train import ClassifierTrainResult, domain_views, voted_accuracy

if TYPE_CHECKING:
    from voxelstudio.ml.classifier_config import ClassifierTrainConfig

VALIDATION_SEED_OFFSET = 500
TEST_SEED_OFFSET = 600
"""The validation and test sets use the training seed plus these (the bundled samples use seed 2024)."""
HARDEN_STREAM = 99


def shapes_set(per_class: int, seed: int, *, size: int = 32, hard_prob: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(grids, labels): ``per_class`` shapes of every class from ``seed``, each made harder with ``hard_prob``
    (:func:`~voxelstudio.sim.shapes.harden_grid`: surface only and/or occluded, as the stream does)."""
    rng = np.random.default_rng([seed, HARDEN_STREAM])
    grids, labels = [], []
    for name, _, grid in generate_shapes(per_class, seed=seed, size=size):
        grids.append(harden_grid(grid, rng) if rng.random() < hard_prob else grid)
        labels.append(SHAPE_CLASSES.index(name))
    return np.stack(grids), np.asarray(labels, dtype=np.int64)


def train_classifier_on_shapes(
    config: ClassifierTrainConfig,
    out: str | Path,
    *,
    steps: int = 100,
    workers: int = 1,
    hard_prob: float = 0.3,
    val_per_class: int = 45,
    test_per_class: int = 0,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> ClassifierTrainResult:
    """Train ``config``'s classifier on the 10 shape classes, ``steps`` fresh batches an epoch made by ``workers``
    processes, ``hard_prob`` of the shapes made harder; keep the best model by validation loss at ``out`` with its
    domain measured, and test it with voting on ``test_per_class`` fresh shapes per class (none: not tested)."""
    from voxelstudio.ml.classifier_training import GeneratedGrids, fit_classifier

    out = Path(out)
    size = config.model.input_shape[0]
    model_cfg = dataclasses.replace(config.model, n_classes=len(SHAPE_CLASSES), input_shape=(size, size, size))
    config = dataclasses.replace(config, model=model_cfg).validate()
    stream = ShapeStream(batch_size=config.batch_size, size=size, seed=config.seed, hard_prob=hard_prob)
    report(Progress(0, None, f"generating {val_per_class} validation shapes per class"))
    val = shapes_set(val_per_class, config.seed + VALIDATION_SEED_OFFSET, size=size, hard_prob=hard_prob)
    train = GeneratedGrids(stream, steps=steps, workers=workers)
    outcome = fit_classifier(train, val, config, SHAPE_CLASSES, out_path=out, report=report, cancel=cancel)
    test_accuracy = None
    if outcome.model_path is not None:
        made = {"generator": "procedural shapes", "hard_prob": hard_prob, "steps_per_epoch": steps,
                "batch_size": config.batch_size, "validation_per_class": val_per_class}  # fmt: skip
        store_domain(outcome.model_path, val[0], val[0], domain_views(config, outcome.stopped_reason), report,
                     extra={"training_data": made})  # fmt: skip
        if test_per_class and outcome.stopped_reason != "cancelled":
            grids, labels = shapes_set(test_per_class, config.seed + TEST_SEED_OFFSET, size=size, hard_prob=hard_prob)
            test_accuracy = voted_accuracy(outcome.model_path, grids, labels, config.voting_views, report=report,
                                           cancel=cancel)  # fmt: skip
    split = {"train": 0, "validation": len(val[1]), "test": test_per_class * len(SHAPE_CLASSES)}
    return ClassifierTrainResult(
        outcome.model_path, outcome.best_val_accuracy, outcome.best_val_loss, outcome.epochs_run,
        outcome.stopped_reason, test_accuracy, split, outcome.history,
    )  # fmt: skip
