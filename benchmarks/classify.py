"""Benchmark the voxel classifiers on the procedural 10-class shapes with a fixed wall-clock budget per model.

Trains VoxNet (width 1) and a CPU-sized Voxception-ResNet (width 0.125) with the papers'/seed's defaults (Adam;
lr, batch size and dropout from the seed; augmentation on) on ``--per-class`` shapes per class (seed 0; split
85/15 into train/validation), then measures test accuracy on ``--test-per-class`` shapes per class from another
seed, with and without 12-rotation voting. Prints a Markdown table. Run from the repository root:

    python benchmarks/classify.py                     # 4 minutes per model, 2 TF threads
    python benchmarks/classify.py --minutes 1 --per-class 40
    python benchmarks/classify.py --quick            # smoke run (run_all.py --quick)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np

from voxelstudio.core.progress import Progress
from voxelstudio.sim.shapes import SHAPE_CLASSES, generate_shapes
from voxelstudio.tasks.datasets import GridDataset

MODELS = {"VoxNet": ("voxnet", {"width": 1.0}), "VRN (width 0.125)": ("vrn", {"width": 0.125})}


def shapes_dataset(per_class: int, seed: int, size: int) -> GridDataset:
    samples = list(generate_shapes(per_class, seed=seed, size=size))
    grids = np.stack([grid for _, _, grid in samples])
    labels = np.array([SHAPE_CLASSES.index(name) for name, _, _ in samples])
    return GridDataset(grids, labels, SHAPE_CLASSES)


def run(name: str, arch: str, model: dict, train: GridDataset, test: GridDataset, args: argparse.Namespace) -> dict:
    from voxelstudio.ml.classifier_config import ClassifierTrainConfig
    from voxelstudio.ml.classifiers import load_classifier, predict_probabilities
    from voxelstudio.tasks.classify import train_classifier

    config = ClassifierTrainConfig.for_arch(
        arch, model_overrides={**model, "input_shape": (args.size,) * 3}, epochs=args.max_epochs,
        minutes=args.minutes, test_fraction=0.0, seed=args.seed,
    )  # fmt: skip
    epoch_ends: list[float] = []

    def report(progress: Progress) -> None:
        if progress.message in ("validated", "epoch done"):
            epoch_ends.append(time.monotonic())

    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        result = train_classifier(train, config=config, out=Path(folder) / "model.keras", report=report)
        loaded = load_classifier(result.model_path)
        single = predict_probabilities(loaded.model, test.grids).argmax(axis=1)
        voted = predict_probabilities(loaded.model, test.grids, rotations=12).argmax(axis=1)
    times = np.diff([started, *epoch_ends])
    return {
        "model": name,
        "params": loaded.model.count_params(),
        "epochs": result.epochs_run,
        "first_epoch_s": float(times[0]) if len(times) else float("nan"),
        "epoch_s": statistics.median(times[1:]) if len(times) > 1 else float("nan"),
        "val": result.best_val_accuracy,
        "test": float(np.mean(single == test.labels)),
        "test_voted": float(np.mean(voted == test.labels)),
        "batch": min(config.batch_size, result.split["train"]),
        "lr": config.learning_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per model [4]")
    parser.add_argument("--max-epochs", type=int, default=200, help="epoch cap [200]")
    parser.add_argument("--per-class", type=int, default=100, help="training + validation shapes per class [100]")
    parser.add_argument("--test-per-class", type=int, default=20, help="test shapes per class [20]")
    parser.add_argument("--size", type=int, default=32, help="grid size [32]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--quick", action="store_true", help="smoke run: 0.5 min per model, 20 + 5 shapes per class")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.per_class, args.test_per_class = 0.5, 20, 5
    train = shapes_dataset(args.per_class, args.seed, args.size)
    test = shapes_dataset(args.test_per_class, args.seed + 1, args.size)
    rows = [run(name, *MODELS[name], train, test, args) for name in args.models]
    threads = os.environ["TF_NUM_INTRAOP_THREADS"]
    print(f"\n{len(train)} training+validation shapes ({args.size}^3, 10 classes), {len(test)} test shapes from "
          f"another seed; {args.minutes:g} min per model on CPU, {threads} TF threads\n")  # fmt: skip
    print("| model | parameters | batch / lr | epochs | first epoch (s) | epoch (s) | val acc | test acc | "
          "test acc (12-rotation vote) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['batch']} / {r['lr']:g} | {r['epochs']} | "
              f"{r['first_epoch_s']:.1f} | {r['epoch_s']:.1f} | {r['val']:.3f} | {r['test']:.3f} | "
              f"{r['test_voted']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
