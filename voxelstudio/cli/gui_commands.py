"""``voxelstudio gui [FILES...] [--sample]``: open the desktop window (also what plain ``voxelstudio`` does)."""

from __future__ import annotations

import argparse
from pathlib import Path

from voxelstudio.core.errors import VolumeReadError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gui",
        help="open the desktop window",
        description="Open the VoxelStudio window, optionally with volumes loaded.",
    )
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="volumes to open (.mat/.tif/.npy/.npz files, .zarr stores): the first as raw, the second as target",
    )
    parser.add_argument("--sample", action="store_true", help="open the bundled sample raw/target bead pair")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.files]
    if args.sample and files:
        raise ValueError("give volume files or --sample, not both")
    if len(files) > 2:
        raise ValueError(f"at most two files (raw, then target); got {len(files)}")
    for path in files:
        if path.is_dir() and not path.name.lower().endswith(".zarr"):
            raise VolumeReadError(path, "is a folder, not a volume file")
        if not path.exists():
            raise VolumeReadError(path, "no such file")
    from voxelstudio.app import run_app

    return run_app(files, sample=args.sample)
