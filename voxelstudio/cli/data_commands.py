"""``voxelstudio info FILE`` and ``voxelstudio convert IN OUT``: look inside volume files and convert between formats.

voxelstudio.io is imported inside the commands so that ``voxelstudio --help`` stays fast. Reader libraries' warnings
about damaged files are silenced here: the damage is reported as the command's one-line error instead.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from voxelstudio.core.volume import Volume
    from voxelstudio.io import FileSummary, VariableInfo


def register(subparsers: argparse._SubParsersAction) -> None:
    info = subparsers.add_parser(
        "info",
        help="list the arrays in a volume file and which one is the volume",
        description="Print each array's name, shape, dtype and value range, the array used as the volume and the "
        "voxel size. Exits with code 2 when no usable volume can be read from the file.",
    )
    info.add_argument("file", type=Path, help=".mat, .tif/.tiff (OME-TIFF too), .npy or .npz file, or a .zarr store")
    info.add_argument("--variable", help="the array to treat as the volume (default: voxel, or the only 3-D array)")
    info.set_defaults(func=run_info)

    convert = subparsers.add_parser(
        "convert",
        help="convert a volume between .mat, .tif/.tiff, .ome.tif, .npy, .npz and .zarr/.ome.zarr",
        description="Read one volume and write it in the format given by OUT's suffix, keeping the voxel size "
        "(.npy cannot store it). Values are written as float32.",
    )
    convert.add_argument("input", type=Path, metavar="IN")
    convert.add_argument("output", type=Path, metavar="OUT")
    convert.add_argument("--variable", help="array to read from IN (default: voxel, or the only 3-D array)")
    convert.add_argument(
        "--out-variable", help="array name in OUT for .mat/.npz (default: the input's name, else voxel)"
    )
    convert.add_argument(
        "--mat-version", choices=("5", "7.3"), help="MAT-file version for .mat output (default 5, or 7.3 above 2 GB)"
    )
    convert.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    convert.set_defaults(func=run_convert)


def _quiet(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # libraries' notes on damaged files; our own warnings still show
            warnings.filterwarnings("default", module=r"voxelstudio(\.|$)")
            return command(args)

    return run


def _spacing_text(spacing: Sequence[float] | None) -> str:
    from voxelstudio.core.volume import UNKNOWN_SPACING

    if spacing is None or tuple(spacing) == UNKNOWN_SPACING:  # VoxelStudio reads 1, 1, 1 as "not given", stored or not
        return "unknown (none in the file, or 1 x 1 x 1, which is read as none)"
    y, x, z = spacing
    return f"y={y:g} x={x:g} z={z:g} um"


def _value_range(array: np.ndarray) -> tuple[str, str, str]:
    """(min, max, note) of the finite values."""
    values = np.asarray(array)
    if values.dtype == np.bool_:
        values = values.view(np.uint8)
    finite = np.isfinite(values) if values.dtype.kind == "f" else None
    note = ""
    if finite is not None and not finite.all():
        note = "has NaN/Inf"
        values = values[finite]
    if values.size == 0:
        return "-", "-", note
    return f"{values.min():.6g}", f"{values.max():.6g}", note


STORE_READ_LIMIT_BYTES = 256 * 2**20
"""``info`` reads a Zarr array whole for its min and max only up to this size: larger stores are processed block by
block, and reading one whole to print two numbers could take longer than the memory holds."""


def _store_array_too_big(summary: FileSummary, info: VariableInfo) -> str | None:
    """Why ``info`` leaves an array of a Zarr store unread ("1.2 GB"), None when it reads it."""
    from voxelstudio.io.variables import format_bytes

    if summary.format not in ("zarr", "ome-zarr") or not info.is_numeric:
        return None
    size = float(np.prod(info.shape[:3], dtype=np.float64)) * np.dtype(info.dtype).itemsize  # one volume: H, W, Z
    return format_bytes(size) if size > STORE_READ_LIMIT_BYTES else None


def _row(path: Path, info: VariableInfo, summary: FileSummary, volume: Volume | None) -> list[str]:
    from voxelstudio.io import VolumeReadError, read_variable

    notes = []
    low = high = "-"
    if info.name == summary.chosen:
        notes.append("<- volume")
    if info.name == summary.metadata_variable:
        notes.append("voxel size (y, x, z)")
    if volume is not None and info.name == summary.chosen:
        low, high, _ = _value_range(volume.data)
    elif (size := _store_array_too_big(summary, info)) is not None:
        notes.append(f"{size}, not read (processed block by block)")
    elif info.is_numeric:
        try:
            low, high, note = _value_range(read_variable(path, info.name))
            notes.append(note)
        except VolumeReadError as exc:
            notes.append(f"unreadable: {exc.problem}")
    else:
        notes.append("not a numeric array")
    return [info.name, info.shape_text, info.dtype, low, high, "; ".join(n for n in notes if n)]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


@_quiet
def run_info(args: argparse.Namespace) -> int:
    from voxelstudio.io import VolumeReadError, load_volume, summarize_file

    summary = summarize_file(args.file, args.variable)
    chosen = next((info for info in summary.variables if info.name == summary.chosen), None)
    unread = None if chosen is None else _store_array_too_big(summary, chosen)
    volume, volume_error = None, None
    if summary.chosen is not None and unread is None:
        try:  # the variable as given: a store's name may carry an axis pick, '0[c=1]'
            volume = load_volume(summary.path, args.variable if args.variable is not None else summary.chosen)
        except VolumeReadError as exc:
            volume_error = exc
    header = ["name", "shape", "dtype", "min", "max", "note"]
    rows = [_row(summary.path, info, summary, volume) for info in summary.variables]
    print(f"file:    {summary.path}")
    print(f"format:  {summary.format}")
    print(_table([header, *rows]) if rows else "(no arrays)")
    shown = args.variable if args.variable is not None else summary.chosen
    if unread is not None and chosen is not None and summary.spacing_problem is None:
        print(f"volume:  {shown} ({'x'.join(map(str, chosen.shape[:3]))}, {unread}: denoise --format zarr "
              "reads it block by block)")  # fmt: skip
        print(f"spacing: {_spacing_text(summary.spacing)}")
        return 0
    if volume is not None:
        plane = ", a 2-D image read as one plane" if chosen is not None and len(chosen.shape) == 2 else ""
        print(f"volume:  {shown} ({'x'.join(map(str, volume.shape))}{plane}, loaded as float32)")
        print(f"spacing: {_spacing_text(volume.known_spacing)}")
        return 0
    print(f"volume:  none ({volume_error.problem if volume_error else summary.choice_problem})")
    if volume_error is not None:
        raise volume_error
    raise VolumeReadError(summary.path, summary.choice_problem or "no volume found")


@_quiet
def run_convert(args: argparse.Namespace) -> int:
    from voxelstudio.core.atomic import check_not_an_input
    from voxelstudio.io import load_volume, save_volume

    check_not_an_input(args.output, {"input file": args.input})
    volume = load_volume(args.input, args.variable)
    written = save_volume(
        volume, args.output, variable=args.out_variable, overwrite=args.overwrite, mat_version=args.mat_version
    )
    spacing = _spacing_text(volume.known_spacing)
    if written.suffix.lower() == ".npy" and volume.known_spacing is not None:
        spacing = "voxel size not stored"
        print(f"voxelstudio: warning: {written.name}: .npy cannot store the voxel size; .npz, .tif or .mat keep it",
              file=sys.stderr)  # fmt: skip
    print(f"wrote {written} ({'x'.join(map(str, volume.shape))} float32, {spacing})")
    return 0
