"""``voxelstudio evaluate`` (metrics of a prediction against its target) and ``voxelstudio deconvolve`` (the
Richardson-Lucy baseline). Tasks are imported inside ``run`` functions to keep ``voxelstudio --help`` fast."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from voxelstudio.core.atomic import check_output_folder
from voxelstudio.core.errors import VolumeWriteError
from voxelstudio.core.volume import SPACING_GIVEN

FORMATS = ("mat", "tif", "npy", "npz")
_FORMAT_OF_SUFFIX = {".mat": "mat", ".tif": "tif", ".tiff": "tif", ".npy": "npy", ".npz": "npz"}

# (label, key in a row, format)
_TABLE_ROWS = (
    ("PSNR (dB)", "psnr", ".2f"),
    ("SSIM", "ssim", ".3f"),
    ("NRMSE", "nrmse", ".4f"),
    ("bead precision", "precision", ".3f"),
    ("bead recall", "recall", ".3f"),
    ("bead F1", "f1", ".3f"),
    ("beads found", "n_pred", "d"),
    ("FWHM lateral", "fwhm_lateral", ".3g"),
    ("FWHM axial", "fwhm_axial", ".3g"),
    ("FWHM axial/lateral", "fwhm_ratio", ".2f"),
    ("beads measured", "fwhm_n", "d"),
)


def voxel_size_arg(text: str) -> tuple[float, float, float]:
    """argparse type of a ``--voxel-size Y,X,Z`` option (µm; ``YxXxZ`` too, as simulate and calibrate take it)."""
    try:
        values = tuple(float(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected three positive numbers Y,X,Z in µm, got {text!r}")
    return values  # type: ignore[return-value]


def folder_arg(text: str) -> Path:
    """argparse type of an ``--out-dir`` option: a folder. A new name like ``out.tif`` is refused, since the outputs
    would go *into* a new folder of that name (an existing file is left to the command: "is a file, not a folder")."""
    from voxelstudio.io.api import SUPPORTED_SUFFIXES

    path = Path(text)
    if path.suffix.lower() in SUPPORTED_SUFFIXES and not path.exists():
        raise argparse.ArgumentTypeError(
            f"{text!r} looks like a file name, but this is the folder the outputs go into as <input name>.<format> "
            "(choose the format with --format)"
        )
    return path


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="compare a prediction with its target (PSNR, SSIM, bead detection, FWHM)",
        description="Compare a prediction with its target: PSNR/SSIM/NRMSE after an affine fit, bead detection "
        "precision/recall/F1 and the bead FWHM (µm when the target file has a voxel size, else voxels). "
        "With --raw, the raw scan is scored too as the baseline.",
    )
    evaluate.add_argument("--pred", required=True, type=Path, help="predicted volume file")
    evaluate.add_argument("--target", required=True, type=Path, help="target (ground-truth) volume file")
    evaluate.add_argument("--raw", type=Path, help="raw scan, scored against the target as the baseline")
    evaluate.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead of a table (infinite or missing values as null)",
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=run_evaluate)

    deconvolve = subparsers.add_parser(
        "deconvolve",
        help="Richardson-Lucy deconvolution (the classical baseline)",
        description="Deconvolve a volume with Richardson-Lucy, using a PSF file or a PSF simulated from the optics "
        "(defaults: NA 1.4 oil objective, 0.52 µm emission, water sample). Writes OUT_DIR/<input stem>.<format>; "
        "the output is in normalised units (background 0).",
    )
    deconvolve.add_argument("input", type=Path, help="volume file to deconvolve")
    deconvolve.add_argument("--psf", type=Path, help="PSF volume file, centred on its brightest voxel")
    optics = deconvolve.add_argument_group("simulated PSF (instead of --psf)")
    optics.add_argument("--na", type=float, help="numerical aperture of the objective")
    optics.add_argument("--wavelength", type=float, help="emission wavelength in µm (e.g. 0.52)")
    optics.add_argument("--ni", type=float, help="refractive index of the immersion medium")
    optics.add_argument("--ns", type=float, help="refractive index of the sample")
    deconvolve.add_argument(
        "--voxel-size", type=voxel_size_arg, metavar="Y,X,Z", help="voxel size in µm (overrides the file's)"
    )
    deconvolve.add_argument("--iterations", type=int, default=20, help="Richardson-Lucy iterations (default 20)")
    deconvolve.add_argument(
        "--out-dir", type=folder_arg, help="output folder (default: 'deconvolved' beside the input)"
    )
    deconvolve.add_argument(
        "--format", choices=FORMATS, help="output format (default: the input's; .mat for a .zarr input)"
    )
    deconvolve.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    deconvolve.add_argument("--quiet", action="store_true", help="no progress bar")
    deconvolve.set_defaults(func=run_deconvolve)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec)


def format_table(result: dict[str, Any]) -> str:
    """The evaluation as a plain-text table: one column per scored volume, then the target's own bead widths."""
    columns = [role for role in ("pred", "raw") if role in result]
    names = result.get("files") or result["names"]
    lines = [f"target: {names['target']}"] + [f"{role}: {names[role]}" for role in columns]
    lines.append(f"FWHM in {'µm' if result['units'] == 'um' else 'voxels'}")
    lines.append(f"{'':<20}" + "".join(f"{role:>12}" for role in columns))
    for label, key, spec in _TABLE_ROWS:
        lines.append(f"{label:<20}" + "".join(f"{_cell(result[role][key], spec):>12}" for role in columns))
    row = result[columns[0]]
    lines.append(
        f"target: {row['n_target']} beads; FWHM lateral {_cell(row['target_fwhm_lateral'], '.3g')}, "
        f"axial {_cell(row['target_fwhm_axial'], '.3g')}, axial/lateral {_cell(row['target_fwhm_ratio'], '.2f')} "
        f"({row['target_fwhm_n']} measured)"
    )
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    from voxelstudio.cli.progress import tqdm_report
    from voxelstudio.tasks.evaluate import evaluate_files

    with tqdm_report("evaluate", quiet=args.quiet) as report:  # on stderr: --json's stdout stays one object
        result = evaluate_files(args.pred, args.target, args.raw, report=report)
    print(json.dumps(_json_ready(result), allow_nan=False) if args.json else format_table(result))
    return 0


def run_deconvolve(args: argparse.Namespace) -> int:
    optics_values = {"na": args.na, "wavelength_um": args.wavelength, "ni": args.ni, "ns": args.ns}
    optics_values = {name: value for name, value in optics_values.items() if value is not None}
    if args.psf is not None and optics_values:
        raise ValueError("give either --psf or the optics options (--na, --wavelength, --ni, --ns), not both")
    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    from voxelstudio.io.api import output_path

    fmt = args.format or _FORMAT_OF_SUFFIX.get(args.input.suffix.lower(), "mat")
    out = output_path(args.input, args.input.parent / "deconvolved" if args.out_dir is None else args.out_dir, fmt)
    check_output_folder(out.parent)
    if out.exists() and not args.overwrite:
        raise VolumeWriteError(out, "already exists; pass --overwrite to replace it")

    from voxelstudio.cli.progress import tqdm_report
    from voxelstudio.io import load_volume, save_volume
    from voxelstudio.sim import OpticsParams
    from voxelstudio.tasks.deconvolve import richardson_lucy_volume

    optics = OpticsParams(**optics_values) if optics_values else None
    volume = load_volume(args.input)
    if args.voxel_size is not None:
        volume = volume.replace(spacing=args.voxel_size, metadata={SPACING_GIVEN: True})
    with tqdm_report("deconvolve", quiet=args.quiet) as report:
        result = richardson_lucy_volume(volume, psf=args.psf, optics=optics, iterations=args.iterations, report=report)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(save_volume(result, out, overwrite=args.overwrite))
    return 0
