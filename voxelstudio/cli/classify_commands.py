"""``voxelstudio train-classifier``, ``evaluate-classifier``, ``classify`` and ``simulate-shapes``: thin wrappers
over voxelstudio.tasks.classify, voxelstudio.tasks.classify_train and voxelstudio.tasks.datasets."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from voxelstudio.cli.progress import EXIT_INTERRUPTED, cancel_on_interrupt, tqdm_report
from voxelstudio.core.errors import Cancelled

ARCHS = ("voxnet", "vrn")
PRESET_CHOICES = ("auto", "cpu", "gpu", "none")  # voxelstudio.ml.classifier_presets.PRESET_CHOICES (ml imports lazily)
ORIENTATIONS = ("upright", "any")  # voxelstudio.ml.classifier_config.ORIENTATIONS


def register(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train-classifier",
        help="train a 3-D voxel classifier (VoxNet or Voxception-ResNet)",
        description="Train a classifier on DATA, a folder with one sub-folder per class of occupancy grids of "
        "one size (.mat variable 'voxel', .npy, ..., or meshes; resampled to --size). The data are split "
        "(stratified, seeded) into training and 10 percent validation (and a test part with --test-fraction); "
        "--minutes alone trains until the budget ends, --epochs alone that many epochs, both whichever ends first. "
        "The best model by validation loss goes to --out, the last epoch to <out stem>.last.keras (beads.last.keras "
        "for --out beads.keras), which --resume continues; --refit then retrains on training + validation for the "
        "best epoch count. --preset picks the VRN width, batch size and schedule for the device. With --search N, "
        "N trials of a Bayesian search (optuna TPE) over learning rate, batch size, dropout and width keep the "
        "model with the best validation accuracy. Ctrl-C stops after the current batch.",
    )
    train.add_argument("data", metavar="DATA", help="folder of class folders")
    train.add_argument("--arch", choices=ARCHS, default="voxnet", help="architecture [default voxnet]")
    train.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="epochs (per trial with --search) [default: until --minutes ends, else 30]",
    )
    train.add_argument("--minutes", type=float, metavar="M", help="time budget in minutes (whole search)")
    train.add_argument(
        "--preset",
        choices=PRESET_CHOICES,
        default="auto",
        help="device recipe for width, batch size, optimizer and schedule [auto: gpu on a GPU, else "
        "cpu; none: the seed's settings]",
    )
    train.add_argument("--width", type=float, metavar="W", help="channel multiplier [from the preset]")
    train.add_argument("--lr", type=float, metavar="LR", help="learning rate [from the preset]")
    train.add_argument("--batch-size", type=int, metavar="B", help="batch size [from the preset; capped by data]")
    train.add_argument("--val-fraction", type=float, default=0.1, metavar="F", help="validation part [0.1]")
    train.add_argument("--test-fraction", type=float, default=0.0, metavar="F", help="held-out test part [0]")
    train.add_argument("--refit", action="store_true", help="retrain on training + validation for the best epochs")
    train.add_argument("--dropout", type=float, metavar="P", help="dropout [voxnet 0.3, vrn 0.2]")
    train.add_argument(
        "--size",
        type=int,
        default=32,
        metavar="N",
        help="input grid N^3, 8 to 128 (VoxNet: from 11); grids of one other size are resampled [32]",
    )
    train.add_argument("--no-augment", action="store_true", help="no rotation/flip/shift augmentation")
    train.add_argument(
        "--orientation",
        choices=ORIENTATIONS,
        default="upright",
        help="how the objects are posed [upright: they share the z axis, augmentation and voting turn about z; "
        "any: random 3-D poses, each grid is put in its principal pose and flipped]",
    )
    train.add_argument("--seed", type=int, default=0, metavar="S", help="seed of split, weights and search [0]")
    train.add_argument("--search", type=int, default=0, metavar="N", help="run N hyper-parameter search trials")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint beside --out")
    train.add_argument("--out", default="classifier.keras", metavar="MODEL.keras", help="[default classifier.keras]")
    train.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "evaluate-classifier",
        help="accuracy and confusion matrix of a classifier on a data set",
        description="Classify every grid of DATA (one sub-folder per class, named as the model's classes) with "
        "rotation voting and print accuracy, per-class accuracy and the confusion matrix.",
    )
    evaluate.add_argument("data", metavar="DATA", help="folder of class folders")
    evaluate.add_argument("--model", required=True, metavar="M", help="classifier (.keras)")
    _add_use_options(evaluate)
    evaluate.set_defaults(func=run_evaluate)

    classify = subparsers.add_parser(
        "classify", help="classify voxel grids", description="Print the most likely classes of each FILE."
    )
    classify.add_argument("files", nargs="+", metavar="FILE", help="grid files (.mat, .npy, .npz, .tif)")
    classify.add_argument("--model", metavar="M", help="classifier (.keras) [default: the bundled shapes model]")
    classify.add_argument("--top", type=int, default=3, metavar="K", help="classes to show [default 3]")
    _add_use_options(classify)
    classify.set_defaults(func=run_classify)

    shapes = subparsers.add_parser(
        "simulate-shapes",
        help="write the procedural 10-class shapes data set",
        description="Write OUTDIR/<class>/<class>_NNNN.npy occupancy grids of 10 procedural shapes (sphere, cube, "
        "cylinder, cone, torus, capsule, pyramid, tube, cross, ellipsoid) of random size, pose, hollowness and noise.",
    )
    shapes.add_argument("outdir", metavar="OUTDIR", help="folder to write the class folders into")
    shapes.add_argument("--per-class", type=int, default=100, metavar="N", help="grids per class [default 100]")
    shapes.add_argument("--seed", type=int, default=0, metavar="S", help="random seed [default 0]")
    shapes.add_argument("--size", type=int, default=32, metavar="N", help="grid size N^3, 8 to 128 [default 32]")
    shapes.add_argument("--format", default="npy", choices=("npy", "mat"), help="uint8 .npy or .mat [default npy]")
    shapes.add_argument("--overwrite", action="store_true", help="replace existing files")
    shapes.add_argument("--quiet", action="store_true", help="no progress bar")
    shapes.set_defaults(func=run_simulate_shapes)


def _add_use_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rotations",
        type=int,
        metavar="R",
        help="views to average: rotations about z for an upright model, at most the 8 flips for one trained with "
        "--orientation any [default: up to 12, as many as the model's measured cost allows within a minute; one "
        "view for a model trained with --no-augment]",
    )
    json_help = "print JSON (evaluate-classifier: one object; classify: a list, one per file)"
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--trust", action="store_true", help="allow model files that contain code")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _positive(option: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"--{option}: must be positive, got {value:g}")


def train_config_from_args(args: argparse.Namespace) -> Any:
    """The seed's defaults for ``--arch`` with the given options replacing them."""
    from voxelstudio.ml.classifier_config import GRID_SIZES, ClassifierTrainConfig
    from voxelstudio.ml.classifier_presets import preset_settings

    for option in ("epochs", "minutes", "width", "lr", "batch_size"):
        _positive(option.replace("_", "-"), getattr(args, option))
    if args.search < 0:
        raise ValueError(f"--search: must not be negative, got {args.search}")
    if args.search and args.resume:
        raise ValueError("--resume continues one training run; it cannot be combined with --search")
    low, high = GRID_SIZES
    if not low <= args.size <= high:
        raise ValueError(f"--size: must be {low} to {high}, got {args.size}")
    if not 0.0 < args.val_fraction < 1.0:  # a validation part picks the best model (and --refit's epoch count)
        raise ValueError(f"--val-fraction: must be in (0, 1), got {args.val_fraction:g}")
    if not 0.0 <= args.test_fraction < 1.0:
        raise ValueError(f"--test-fraction: must be in [0, 1), got {args.test_fraction:g}")
    name, preset = preset_settings(args.arch, args.preset, device_kind(args.preset))
    model = {**preset.pop("model"), "input_shape": (args.size,) * 3}
    model.update({k: v for k, v in {"width": args.width, "dropout": args.dropout}.items() if v is not None})
    model["orientation"] = args.orientation
    options = {"epochs": args.epochs, "minutes": args.minutes, "learning_rate": args.lr, "batch_size": args.batch_size}
    options = {**preset, **{k: v for k, v in options.items() if v is not None}}
    config = ClassifierTrainConfig.for_arch(args.arch, model_overrides=model, seed=args.seed, **options)
    return dataclasses.replace(config, augment=not args.no_augment, val_fraction=args.val_fraction,
                               test_fraction=args.test_fraction, refit=args.refit, preset=name).validate()  # fmt: skip


def device_kind(preset: str) -> str:
    """ "GPU" or "CPU" from the devices the backend sees (only asked for ``--preset auto``)."""
    if preset != "auto":
        return "CPU"
    from voxelstudio.ml.device import configure_devices

    return configure_devices().kind


def run_train(args: argparse.Namespace) -> int:
    from voxelstudio.core.atomic import check_destination
    from voxelstudio.tasks.classify_train import train_classifier
    from voxelstudio.tasks.datasets import load_class_folder

    check_destination(args.out, overwrite=args.overwrite or args.resume, hint="pass --overwrite")
    config = train_config_from_args(args)  # --preset auto starts the backend to see the device
    try:
        with cancel_on_interrupt() as cancel, tqdm_report("train", quiet=args.quiet) as report:
            dataset = load_class_folder(args.data, grid_shape=config.model.input_shape, strict=True, report=report,
                                        cancel=cancel)  # fmt: skip
            result = train_classifier(dataset, config=config, out=Path(args.out), resume=args.resume,
                                      search_trials=args.search, report=report, cancel=cancel)  # fmt: skip
    except Cancelled as exc:  # while loading the data or between search trials (a stopped training returns)
        print(f"voxelstudio: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    split = ", ".join(f"{k} {v}" for k, v in result.split.items())
    print(f"data: {len(dataset.classes)} classes, {len(dataset)} grids ({split})")
    if config.preset:
        print(f"preset: {config.preset} (width {config.model.width:g}, batch {config.batch_size}, "
              f"{config.optimizer} lr {config.learning_rate:g}, {config.schedule} schedule)")  # fmt: skip
    if result.trials:
        best = ", ".join(f"{k} {v:.4g}" for k, v in result.best_params.items())
        print(f"search: {len(result.trials)} trials; best {best}")
    accuracy = f"{result.best_val_accuracy:.3f}" if math.isfinite(result.best_val_accuracy) else "n/a"
    test = f"; test accuracy {result.test_accuracy:.3f} (rotation voting)" if result.test_accuracy is not None else ""
    print(f"{result.model_path or args.out}: validation accuracy {accuracy}{test}; {result.epochs_run} epochs; "
          f"stopped: {result.stopped_reason}")  # fmt: skip
    if result.refit_outcome == "done":
        print(f"refit on training + validation for {result.refit_epochs} epochs")
    elif result.refit_outcome is not None:
        how = "stopped" if result.refit_outcome == "cancelled" else result.refit_outcome
        print(f"refit {how}; {result.model_path} is still the validated model")
    if result.stopped_reason == "cancelled":
        return EXIT_INTERRUPTED
    return 1 if (result.refit_outcome or "").startswith("failed") else 0


def _format_report(report: dict[str, Any]) -> str:
    classes = report["classes"]
    width = max(len(c) for c in classes)
    lines = [f"accuracy {report['accuracy']:.3f} on {report['count']} grids ({report['rotations']} rotation(s))", ""]
    lines += [f"  {name:<{width}}  {acc:.3f}" for name, acc in report["per_class"].items()]
    cell = max(5, *(len(str(v)) + 1 for row in report["confusion"] for v in row))
    lines += ["", "confusion (rows: true class, columns: predicted, both in the model's class order below)"]
    for name, row in zip(classes, report["confusion"], strict=True):
        lines.append(f"  {name:<{width}} " + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    from voxelstudio.tasks.classify import evaluate_classifier

    _positive("rotations", args.rotations)
    with tqdm_report("evaluate", quiet=args.quiet or args.json) as report:
        result = evaluate_classifier(args.data, model_path=args.model, rotations=args.rotations, trusted=args.trust,
                                     report=report)  # fmt: skip
    if args.json:
        keys = ("accuracy", "per_class", "confusion", "classes")
        print(json.dumps({k: result[k] for k in keys}))
    else:
        print(_format_report(result))
    return 0


def run_classify(args: argparse.Namespace) -> int:
    from voxelstudio.io import load_volume
    from voxelstudio.tasks.classify import classify_volumes

    _positive("rotations", args.rotations)
    _positive("top", args.top)
    volumes = [load_volume(path) for path in args.files]
    with tqdm_report("classify", quiet=args.quiet or args.json or len(volumes) < 2) as report:
        predictions = classify_volumes(volumes, model_path=args.model, top=args.top, rotations=args.rotations,
                                       trusted=args.trust, report=report)  # fmt: skip
    if args.json:
        records = [
            {
                "file": str(path),
                "top": [{"class": name, "probability": probability} for name, probability in prediction.top],
                "probabilities": prediction.probabilities,
                "in_domain": prediction.out_of_domain is None,
                "out_of_domain": prediction.out_of_domain,
            }
            for path, prediction in zip(args.files, predictions, strict=True)
        ]
        print(json.dumps(records))
        return 0
    for path, prediction in zip(args.files, predictions, strict=True):
        ranked = ", ".join(f"{name} {probability:.3f}" for name, probability in prediction.top)
        if prediction.out_of_domain is None:
            print(f"{path}: {ranked}")
        else:
            from voxelstudio.ml.classifier_domain import UNLIKE  # Keras-free

            print(f"{path}: {UNLIKE} ({prediction.out_of_domain}); closest: {ranked}")
    return 0


def run_simulate_shapes(args: argparse.Namespace) -> int:
    from voxelstudio.tasks.datasets import write_shapes_dataset

    if args.seed < 0:
        raise ValueError(f"--seed: must not be negative, got {args.seed}")
    if args.per_class < 1:
        raise ValueError(f"--per-class: must be at least 1, got {args.per_class}")
    from voxelstudio.ml.classifier_config import GRID_SIZES  # Keras-free

    if not 8 <= args.size <= GRID_SIZES[1]:
        raise ValueError(f"--size: must be 8 to {GRID_SIZES[1]} (the largest grid a classifier takes), got {args.size}")
    with tqdm_report("shapes", quiet=args.quiet) as report:
        paths = write_shapes_dataset(args.outdir, per_class=args.per_class, seed=args.seed, size=args.size,
                                     fmt=args.format, overwrite=args.overwrite, report=report)  # fmt: skip
    print(f"wrote {len(paths)} grids in 10 class folders to {args.outdir}")
    return 0
