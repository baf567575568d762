"""``voxelstudio train-denoiser`` and ``voxelstudio denoise``: thin wrappers over voxelstudio.tasks."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voxelstudio.cli.eval_commands import folder_arg, voxel_size_arg
from voxelstudio.cli.progress import EXIT_INTERRUPTED, cancel_on_interrupt, tqdm_report
from voxelstudio.core.errors import Cancelled


def register(subparsers: Any) -> None:
    from voxelstudio.ml.config import ARCHITECTURES, LOSSES, PRESETS  # imports no TensorFlow: keeps --help fast

    train = subparsers.add_parser(
        "train-denoiser",
        help="train a denoiser on raw/target volume pairs",
        description="Train a 3-D denoiser. RAW and TARGET are two files or two folders whose files are paired by "
        "name. The best model (by validation loss) is written to --out; the last epoch to <out stem>.last.keras "
        "with <out stem>.last.json (beads.last.keras for --out beads.keras), which --resume continues from. Ctrl-C "
        "stops after the current batch and keeps the best model.",
    )
    train.add_argument("--raw", required=True, metavar="R", help="raw volume file or folder")
    train.add_argument("--target", required=True, metavar="T", help="target volume file or folder")
    train.add_argument("--val-raw", metavar="VR", help="validation raw file or folder (default: split off the pairs)")
    train.add_argument("--val-target", metavar="VT", help="validation target file or folder (pairs by file name)")
    train.add_argument(
        "--preset",
        choices=PRESETS,
        help="recipe for the device: cpu (8-filter U-Net, small batches), gpu (32 filters, 128x128x32 patches, "
        "batches of 16, mixed precision); auto picks by the device [default auto, or the --config file's]",
    )
    train.add_argument(
        "--arch", choices=ARCHITECTURES, help="network architecture [default: the --init model's or the preset's]"
    )
    train.add_argument("--loss", choices=LOSSES, help="training loss [default mse]")
    train.add_argument("--epochs", type=int, metavar="N", help="maximum number of epochs")
    train.add_argument("--minutes", type=float, metavar="M", help="stop after M minutes")
    train.add_argument("--lr", type=float, metavar="LR", help="Adam learning rate")
    train.add_argument("--batch-size", type=int, metavar="B", help="patches per batch")
    train.add_argument("--patch", metavar="H,W,Z", help="patch shape")
    train.add_argument(
        "--spacing-input",
        action="store_true",
        help="the network also takes each volume's voxel size (one model for several voxel sizes); it then needs "
        "the voxel size of everything it denoises",
    )
    train.add_argument("--seed", type=int, metavar="S", help="random seed")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint beside --out")
    start = train.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="MODEL", help="start from this model's weights, in its architecture")
    start.add_argument(
        "--from-scratch",
        action="store_true",
        help="start from random weights, not from a model (the default for now: see --init)",
    )
    train.add_argument("--config", metavar="JSON", help="training config file; options given here override it")
    train.add_argument("--out", required=True, metavar="MODEL.keras", help="where to write the best model")
    train.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    denoise = subparsers.add_parser(
        "denoise",
        help="denoise volumes with a trained model",
        description="Denoise each IN into OUT_DIR/<name>.<format> (<name>.ome.zarr for --format zarr; same variable "
        "name and voxel spacing) with a <name>.<format>.json provenance record beside it. Inputs are never "
        "overwritten.",
    )
    denoise.add_argument("inputs", nargs="+", metavar="IN", help="volume files (.mat, .tif, .npy, .npz, .zarr)")
    denoise.add_argument(
        "--model",
        metavar="M",
        help="model file (.keras, or a .zip from export-model --bioimageio) [default: the bundled model]",
    )
    denoise.add_argument(
        "--out-dir", type=folder_arg, default="denoised", metavar="D", help="output folder [default ./denoised]"
    )
    denoise.add_argument(
        "--format",
        default="mat",
        choices=("mat", "tif", "npy", "zarr", "ome.tif"),
        help="output format [default mat]; zarr writes OME-Zarr, block by block when the input is a Zarr store",
    )
    denoise.add_argument("--tta", action="store_true", help="average 8 flips/rotations; also write the uncertainty")
    denoise.add_argument("--tile", metavar="H,W,Z", help="tile shape [default: chosen from the free memory]")
    denoise.add_argument("--trust", action="store_true", help="allow model files that contain code")
    denoise.add_argument(
        "--variable",
        metavar="NAME",
        help="the array of every IN to denoise: a .mat/.npz variable, an OME-Zarr level ('2') or an axis pick "
        "('0[t=3,c=1]') [default: voxel, or the only 3-D array; a store's full resolution]",
    )
    denoise.add_argument(
        "--voxel-size",
        type=voxel_size_arg,
        metavar="Y,X,Z",
        help="voxel size in µm of every input, replacing the files' own (which outputs keep otherwise); a model "
        "that takes the voxel size as an input needs the right one",
    )
    denoise.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    denoise.add_argument("--block", metavar="H,W,Z", help="block (output chunk) shape for Zarr to Zarr")
    denoise.add_argument(
        "--resume",
        action="store_true",
        help="skip inputs an earlier run finished (output and its .json sidecar; an output without one is redone) "
        "and continue an interrupted Zarr to Zarr store from its finished blocks",
    )
    denoise.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask.distributed scheduler (tcp://host:8786), or local[:N] for N local worker processes [default N: "
        "one per core that memory allows]: small files (up to 256 MB, or Zarr stores of one block) go there as "
        "whole-file tasks, larger Zarr stores block by block; each worker loads the model once (logged)",
    )
    denoise.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="block-wise (Zarr to Zarr): keep each process predicting blocks under SIZE (e.g. 1.5GB, 800MiB) by "
        "choosing smaller tiles, which compute more of their overlap [default: tiles from the free memory; on dask "
        "workers, their own memory limit]",
    )
    denoise.add_argument("--quiet", action="store_true", help="no progress bar")
    denoise.set_defaults(func=run_denoise)


def _shape(option: str, text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"--{option}: expected three positive integers H,W,Z, got {text!r}")
    return values  # type: ignore[return-value]


MIN_MEMORY_LIMIT = 64 << 20


def _size(option: str, text: str | None) -> int | None:
    """Bytes from a size such as 1.5GB or 800MiB (dask's notation; a bare number is bytes)."""
    if text is None:
        return None
    from dask.utils import parse_bytes

    try:
        value = parse_bytes(text.strip()) if text.strip() else 0
    except (ValueError, KeyError, TypeError):
        value = 0
    if value < MIN_MEMORY_LIMIT:  # a bare 1500 is bytes: surely a unit was meant
        raise ValueError(f"--{option}: expected a size of at least 64MiB such as 1.5GB or 800MiB, got {text!r}")
    return int(value)


def _device_kind() -> str:
    from voxelstudio.ml.device import configure_devices

    return configure_devices().kind


def _architecture_of(init: str, arch: str | None) -> Any:
    """The architecture stored in a model file to train from (``--init``, or the checkpoint ``--resume`` continues);
    None for a file without VoxelStudio's training config, e.g. a BioImage package (the preset's then has to match,
    as loading checks); ValueError when ``--arch`` asks for another, or the file is missing."""
    from voxelstudio.ml.bundled import describe_architecture, read_train_config

    try:
        model = read_train_config(init).model
    except ValueError:
        if Path(init).is_file():
            return None
        raise
    if arch is not None and arch != model.arch:
        raise ValueError(f"--arch {arch}: {init} is a {describe_architecture(model)}; training from it keeps that")
    return model


_RESUMED_RUN_KEEPS = {
    "loss": ("loss", lambda c: c.loss.name),
    "seed": ("seed", lambda c: c.seed),
    "lr": ("learning rate", lambda c: c.learning_rate),
    "arch": ("architecture", lambda c: c.model.arch),
}
"""What a resumed run cannot change: ``--option`` -> (what it is, its value in a config). The loss and seed decide
which model is best and which pairs validate; the learning rate goes on from the checkpoint's schedule."""


def _resumed_config(args: argparse.Namespace) -> Any:
    """The checkpoint's own TrainConfig, which ``--resume`` continues (None without a checkpoint), with the run's
    length (--epochs, --minutes) and its batches (--batch-size, --patch) as given; an option that would change the
    run itself (--loss, --seed, --lr, --arch, --preset, --spacing-input) is refused unless it matches."""
    from voxelstudio.ml.bundled import read_train_config
    from voxelstudio.ml.fit import checkpoint_paths

    checkpoint = checkpoint_paths(args.out)[0]
    if not checkpoint.is_file():
        return None
    config = read_train_config(str(checkpoint))
    if getattr(args, "preset", None) is not None:
        raise ValueError(f"--preset: --resume goes on with {checkpoint.name}'s own recipe; leave it out")
    for option, (what, value_of) in _RESUMED_RUN_KEEPS.items():
        given = getattr(args, option, None)
        if given is not None and given != value_of(config):
            raise ValueError(
                f"--{option} {given}: the run --resume continues has {what} {value_of(config)} ({checkpoint.name}); "
                "a resumed run keeps it (start a new run with another --out to change it)"
            )
    if getattr(args, "spacing_input", False) and not config.model.spacing_input:
        raise ValueError(f"--spacing-input: the run --resume continues ({checkpoint.name}) does not take it")
    options = {
        "epochs": args.epochs,
        "minutes": args.minutes,
        "batch_size": args.batch_size,
        "patch_shape": _shape("patch", args.patch),
    }
    return dataclasses.replace(config, **{k: v for k, v in options.items() if v is not None}).validate()


def train_config_from_args(args: argparse.Namespace, device_kind: Callable[[], str] = _device_kind) -> Any:
    """The TrainConfig: --config, else the --preset's recipe (auto: by the device) with the ``--init`` model's
    architecture when one is given, and the options given here replacing its values. ``--resume`` goes on with the
    checkpoint's own config (:func:`_resumed_config`)."""
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig, preset_config, resolve_preset

    preset = getattr(args, "preset", None)
    if args.config and preset is not None:
        raise ValueError("give --config or --preset, not both")
    if not args.config and getattr(args, "resume", False):
        resumed = _resumed_config(args)
        if resumed is not None:
            return resumed
    if args.config:
        config = TrainConfig.load(args.config)
    else:
        preset = preset or "auto"
        config = preset_config(resolve_preset(preset, device_kind() if preset == "auto" else "CPU"))
    init = getattr(args, "init", None)
    start = None
    if not args.config and init is not None:
        start = _architecture_of(init, args.arch)
    if start is not None:  # the weights define the architecture
        config = dataclasses.replace(config, model=start)
    elif args.arch is not None and args.arch != config.model.arch:
        config = dataclasses.replace(config, model=DenoiserConfig.for_arch(args.arch))
    if getattr(args, "spacing_input", False):
        if start is not None and not start.spacing_input:
            raise ValueError("--spacing-input: the model training starts from does not take the voxel size")
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, spacing_input=True))
    if args.loss is not None:
        config = dataclasses.replace(config, loss=dataclasses.replace(config.loss, name=args.loss))
    options = {
        "epochs": args.epochs,
        "minutes": args.minutes,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "patch_shape": _shape("patch", args.patch),
        "seed": args.seed,
    }
    config = dataclasses.replace(config, **{k: v for k, v in options.items() if v is not None})
    return config.validate()


def run_train(args: argparse.Namespace) -> int:
    from voxelstudio.core.atomic import check_destination, check_not_an_input
    from voxelstudio.tasks.train import load_pairs, train_denoiser

    check_not_an_input(args.out, {"model it starts from (--init)": None if args.from_scratch else args.init})
    check_destination(args.out, overwrite=args.overwrite or args.resume, hint="pass --overwrite")
    if (args.val_raw is None) != (args.val_target is None):
        raise ValueError("--val-raw and --val-target go together")
    config = train_config_from_args(args)  # --preset auto starts the backend to see the device
    pairs = load_pairs(args.raw, args.target)
    val_pairs = load_pairs(args.val_raw, args.val_target) if args.val_raw else None  # files, or folders of pairs
    init = None if args.from_scratch else args.init
    with cancel_on_interrupt() as cancel, tqdm_report("train", quiet=args.quiet) as report:
        result = train_denoiser(
            pairs, config=config, out=Path(args.out), val_pairs=val_pairs, resume=args.resume, init=init,
            report=report, cancel=cancel,
        )  # fmt: skip
    best = f"best loss {result.best_val_loss:.4g}" if result.model_path else "no model saved"
    print(f"{result.model_path or args.out}: {best}; {result.epochs_run} epochs; stopped: {result.stopped_reason}")
    if result.bead_offset is not None:
        print(result.bead_offset.summary())
    elif result.model_path is not None and result.stopped_reason == "cancelled":
        print("Bead positions: not measured (stopped); the model is not corrected for them.")
    return EXIT_INTERRUPTED if result.stopped_reason == "cancelled" else 0


class _StderrLines(logging.Handler):
    """Log records as ``voxelstudio: ...`` lines on the current sys.stderr, above the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(f"voxelstudio: {record.getMessage()}", file=sys.stderr)


def _log_to_stderr(name: str) -> None:
    """Show the INFO lines of logger ``name`` on stderr (one handler however often this is called)."""
    logger = logging.getLogger(name)
    if not any(isinstance(h, _StderrLines) for h in logger.handlers):
        logger.addHandler(_StderrLines())
    logger.setLevel(logging.INFO)


def run_denoise(args: argparse.Namespace) -> int:
    from voxelstudio.tasks.denoise import denoise_files

    tile = _shape("tile", args.tile)
    if args.scheduler is not None:
        _log_to_stderr("voxelstudio.tasks.file_cluster")
    try:
        with cancel_on_interrupt() as cancel, tqdm_report("denoise", quiet=args.quiet) as report:
            outputs = denoise_files(
                args.inputs, model_path=args.model, out_dir=args.out_dir, fmt=args.format, tta=args.tta,
                trusted=args.trust, tile_shape=tile, overwrite=args.overwrite, block=_shape("block", args.block),
                resume=args.resume, scheduler=args.scheduler, memory_limit=_size("memory-limit", args.memory_limit),
                voxel_size=args.voxel_size, variable=args.variable,
                report=report, cancel=cancel,
            )  # fmt: skip
    except Cancelled as exc:
        print(f"voxelstudio: {exc}; finished files are kept, --resume goes on from them", file=sys.stderr)
        return EXIT_INTERRUPTED
    for path in outputs:
        print(path)
    if cancel.cancelled:  # Ctrl-C during the last step, which finished: interrupted all the same
        print("voxelstudio: interrupted after the last file was written; every file is kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
