"""``voxelstudio gui [FILES...] [--sample]``: open the desktop window (also what plain ``voxelstudio`` does)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from voxelstudio.core.errors import VolumeReadError, VoxelStudioError


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
    check_display()
    from voxelstudio.app import run_app

    return run_app(files, sample=args.sample)


def check_display(environ: Mapping[str, str] | None = None, platform: str | None = None) -> None:
    """VoxelStudioError when the window has nowhere to open: on Linux without X11 or Wayland (plain ssh to a
    cluster), where Qt would abort the process with a core dump and a page of plugin advice."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux") or environ.get("QT_QPA_PLATFORM"):
        return
    if not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        raise VoxelStudioError(
            "no display to open the window on (DISPLAY is not set): connect with ssh -X, or use the commands "
            "(voxelstudio --help), which need none"
        )
