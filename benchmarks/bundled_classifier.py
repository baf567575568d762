"""Compare classifier files on the 10 procedural shape classes: fresh shapes, the same shapes made hard, and the
bundled samples, each with the model's rotation/flip vote. Prints a Markdown table. Run from the repository root:

    python benchmarks/bundled_classifier.py                         # the bundled classifier
    python benchmarks/bundled_classifier.py OLD.keras NEW.keras     # several models on the same grids

Fresh shapes are ``--per-class`` of each class from ``--seed`` (7: neither the bundled classifier's training stream,
seed 0, nor its validation/test seeds 500/600, nor the bundled samples' 2024); the hard set is the same shapes, every
one passed through ``sim.shapes.harden_grid`` (3 in 4 surface only and/or cut off beyond a plane, all noisier).
Models may order their classes differently (one trained on a class folder: alphabetically); grids are matched by
class name.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from voxelstudio.core.resources import resource_path
from voxelstudio.sim.shapes import SHAPE_CLASSES
from voxelstudio.tasks.classifier_domain import pose_options
from voxelstudio.tasks.classify import default_classifier_path
from voxelstudio.tasks.classify_shapes import shapes_set
from voxelstudio.tasks.datasets import load_class_folder


def test_sets(per_class: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (grids, labels as SHAPE_CLASSES indices)."""
    samples = load_class_folder(resource_path("shapes"), grid_shape=(32, 32, 32))
    to_shape_index = np.array([SHAPE_CLASSES.index(name) for name in samples.classes])
    return {
        f"{per_class * len(SHAPE_CLASSES)} fresh shapes, seed {seed}": shapes_set(per_class, seed),
        "the same made hard": shapes_set(per_class, seed, hard_prob=1.0),
        f"{len(samples.labels)} bundled samples": (samples.grids, to_shape_index[samples.labels]),
    }


def accuracies(model_path: Path, sets: dict[str, tuple[np.ndarray, np.ndarray]], views: int) -> list[str]:
    """One Markdown cell per set: accuracy (right / all) and the seconds the vote took."""
    from voxelstudio.ml.classifiers import load_classifier, predict_probabilities

    loaded = load_classifier(model_path)
    columns = [list(loaded.classes).index(name) for name in SHAPE_CLASSES]  # the model's column of each shape class
    cells = []
    for grids, labels in sets.values():
        started = time.perf_counter()
        probabilities = predict_probabilities(loaded.model, grids, rotations=views, **pose_options(loaded))
        right = int(np.sum(probabilities[:, columns].argmax(axis=1) == labels))
        cells.append(f"{right / len(labels):.3f} ({right}/{len(labels)}, {time.perf_counter() - started:.0f} s)")
    return [f"pose {loaded.pose_version}", *cells]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", type=Path, help="classifier files [the bundled one]")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--views", type=int, default=8, help="voting views (flips or turns about z) [8]")
    args = parser.parse_args()
    sets = test_sets(args.per_class, args.seed)
    print("| model | pose | " + " | ".join(sets) + " |")
    print("|---|---|" + "---:|" * len(sets))
    for path in args.models or [default_classifier_path()]:
        print(f"| {path.name} | " + " | ".join(accuracies(path, sets, args.views)) + " |", flush=True)


if __name__ == "__main__":
    main()
