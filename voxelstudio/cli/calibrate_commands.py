"""``voxelstudio calibrate`` and ``voxelstudio adapt``: fit the simulator to raw bead scans; fine-tune a denoiser."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from voxelstudio.cli.progress import EXIT_INTERRUPTED, cancel_on_interrupt, tqdm_report
from voxelstudio.core.errors import Cancelled


def _add_calibration_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw", nargs="+", metavar="RAW", help="raw bead scans of one microscope (beads are pooled)")
    parser.add_argument(
        "--voxel-size", metavar="Y,X,Z", help="voxel size in µm [default: from the file]; Y,X alone fits the z step"
    )
    parser.add_argument("--wavelength", metavar="UM", help="emission wavelength in µm [default: fitted]")
    parser.add_argument("--na", metavar="NA", help="numerical aperture [default: fitted]")
    parser.add_argument("--ni", metavar="N", help="immersion index the objective is designed for [default 1.515]")
    parser.add_argument("--psf", metavar="FILE", help="a measured PSF stack to simulate with instead of Gibson-Lanni")
    parser.add_argument(
        "--dark", metavar="FILE", help="a stack recorded with no light, same camera settings: offset and read noise"
    )
    parser.add_argument("--force", action="store_true", help="write the result even when the fit did not converge")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: Any) -> None:
    calibrate = subparsers.add_parser(
        "calibrate",
        help="fit the simulator to the beads and background of raw scans",
        description="Measure the microscope from raw bead scans: camera gain, offset and read noise from the "
        "background, a measured bead averaged from isolated unsaturated beads, the optics (NA, index mismatch and "
        "depth, wavelength and z step unless given) fitted to it, background and haze. Writes PARAMS.json "
        "(simulator parameters and report) and PARAMS.psf.tif (the measured bead).",
    )
    _add_calibration_options(calibrate)
    calibrate.add_argument("--out", metavar="PARAMS.json", help="where to write the parameters [default: none]")
    calibrate.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    calibrate.add_argument("--json", action="store_true", help="print the report as JSON")
    calibrate.set_defaults(func=run_calibrate)

    adapt = subparsers.add_parser(
        "adapt",
        help="fine-tune a denoiser to a microscope from its raw bead scans (no targets)",
        description="Calibrate the simulator on RAW (as `calibrate`), simulate training pairs with the fitted "
        "optics and noise, and fine-tune the bundled denoiser (or --init) on them. The fitted parameters and the "
        "measured bead are stored in the model. Ctrl-C stops after the current batch and keeps the best model.",
    )
    _add_calibration_options(adapt)
    adapt.add_argument("--out", required=True, metavar="MODEL.keras", help="where to write the model")
    adapt.add_argument("--minutes", metavar="M", help="time for the whole adaptation, calibration included [default 5]")
    adapt.add_argument("--init", metavar="MODEL", help="model to start from [default: the bundled denoiser]")
    adapt.add_argument(
        "--correct-only",
        action="store_true",
        help="no fine-tuning: --out is the starting model with the calibration and the shift that puts its beads "
        "back where they are, measured on pairs simulated with it (15-30 seconds)",
    )
    adapt.add_argument("--pairs", metavar="N", help="simulated training pairs [default 8]")
    adapt.add_argument(
        "--jitter",
        metavar="J",
        help="relative spread of their parameters (of a sample's index: of its mismatch with the immersion) [0.1]",
    )
    adapt.add_argument("--seed", default="0", metavar="S", help="random seed [default 0]")
    adapt.set_defaults(func=run_adapt)


ADAPT_TRAINING_DEFAULTS = {"minutes": "5", "pairs": "8", "jitter": "0.1"}
"""The fine-tuning options of ``adapt`` and their defaults; ``--correct-only`` refuses them."""


def _number(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--{option}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"--{option}: expected a finite number, got {text!r}")
    return value


def calibration_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``calibrate_volumes`` from the command line."""
    options: dict[str, Any] = {"wavelength_um": _number("wavelength", args.wavelength), "na": _number("na", args.na)}
    if args.dark is not None:
        options["dark"] = args.dark
    if args.ni is not None:
        options["ni"] = _number("ni", args.ni)
    if args.voxel_size is not None:
        parts = [p for p in args.voxel_size.replace("x", ",").split(",") if p.strip()]
        if len(parts) not in (2, 3):
            raise ValueError(f"--voxel-size: expected Y,X,Z (or Y,X) in µm, got {args.voxel_size!r}")
        options["voxel_size"] = tuple(_number("voxel-size", p.strip()) for p in parts)
    return options


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable calibration report."""
    lines = [f"beads: {report['beads_used']} used of {report['beads_found']} found"]
    if report["beads_saturated"]:
        lines[-1] += f" ({report['beads_saturated']} saturated)"
    for name, entry in report["fitted"].items():
        sd = "(not determined by the beads)" if entry["sd"] is None else f"± {entry['sd']:.2g}"
        lines.append(f"  {name:<16} {entry['value']:.4g} {sd}")
    for name, value in report["ambient"].items():
        lines.append(f"  {name:<16} {value:.4g}")
    fit = report["fit"]
    state = "converged" if fit["converged"] else "NOT converged"
    lines.append(f"fit: {state}, residual {fit['relative_residual']:.3g}, {fit['noise_ratio']:.3g}x noise variance")
    lines += [f"  - {problem}" for problem in fit.get("problems", [])]
    if report.get("z_reversed"):
        lines.append("stack order: reversed (the PSF's longer tail points to the other end); pairs are simulated so")
    measured, model = report["fwhm_um"]["measured"], report["fwhm_um"]["model"]

    def um(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines.append(f"FWHM lateral/axial µm: measured {um(measured['lateral'])}/{um(measured['axial'])}, "
                 f"model {um(model['lateral'])}/{um(model['axial'])}")  # fmt: skip
    check = report.get("axial_check_um")
    if check:
        lines.append(f"axial cross-check (3x3 lines, bead box) µm: measured {um(check['measured'])}, "
                     f"model {um(check['model'])}")  # fmt: skip
    if report["assumed"]:
        lines.append("assumed: " + ", ".join(report["assumed"]))
    if report["clipped"]:
        lines.append("clipped to the simulator's range: " + ", ".join(report["clipped"]))
    return "\n".join(lines)


def run_calibrate(args: argparse.Namespace) -> int:
    from voxelstudio.tasks.calibration_file import calibrate_files, calibration_report

    options = calibration_options(args)
    with tqdm_report("calibrate", quiet=args.quiet or args.json) as report:
        cal, written = calibrate_files(
            args.raw, args.out, psf=args.psf, force=args.force, overwrite=args.overwrite, report=report, **options
        )
    summary = calibration_report(cal, args.raw)
    if args.json:  # stdout is the one JSON object; what was written is in it
        record = {**summary, "sim_params": cal.params.to_dict(), "written": [str(p) for p in written or ()]}
        print(json.dumps(record, indent=2, allow_nan=False))
        return 0
    print(format_report(summary))
    if written:
        print(f"wrote {written[0]} and {written[1]}")
    return 0


def run_adapt(args: argparse.Namespace) -> int:
    from voxelstudio.tasks.adapt import adapt_files
    from voxelstudio.tasks.calibration_file import calibration_report

    options = calibration_options(args)
    given = [f"--{name}" for name in ADAPT_TRAINING_DEFAULTS if getattr(args, name) is not None]
    if args.correct_only and given:
        raise ValueError(f"--correct-only trains nothing, so {' and '.join(given)} would be ignored; leave them out")
    minutes, pairs, jitter = (
        _number(name, default if getattr(args, name) is None else getattr(args, name))
        for name, default in ADAPT_TRAINING_DEFAULTS.items()
    )
    seed = _number("seed", args.seed)
    if pairs is None or pairs < 1 or pairs != int(pairs):
        raise ValueError(f"--pairs: expected a positive integer, got {args.pairs!r}")
    if jitter is None or not 0 <= jitter < 1:
        raise ValueError(f"--jitter: must be in [0, 1), got {args.jitter!r}")
    if seed is not None and (seed < 0 or seed != int(seed)):
        raise ValueError(f"--seed: expected a whole number >= 0, got {args.seed!r}")
    if Path(args.out).exists():
        raise ValueError(f"{args.out}: already exists; choose another --out")
    try:
        with cancel_on_interrupt() as cancel, tqdm_report("adapt", quiet=args.quiet) as report:
            result = adapt_files(
                args.raw, args.out, init=args.init, minutes=minutes, pairs=int(pairs), jitter=jitter, psf=args.psf,
                force=args.force, seed=int(seed or 0), report=report, cancel=cancel, fine_tune=not args.correct_only,
                **options,
            )  # fmt: skip
    except Cancelled as exc:
        print(f"voxelstudio: {exc}; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(format_report(calibration_report(result.calibration, args.raw)))
    training = result.training
    if training is None:
        corrected = result.bead_offset is not None and result.bead_offset.corrects
        how = "corrected" if corrected else "as it is, with the calibration"
        print(f"{result.model_path}: the starting model, {how} (not fine-tuned)")
    else:
        best = f"best loss {training.best_val_loss:.4g}" if training.model_path else "no model saved"
        print(f"{training.model_path or args.out}: {best}; {training.epochs_run} epochs; {training.stopped_reason}")
    if result.bead_offset is not None:
        print(result.bead_offset.summary())
    elif result.model_path is not None:
        print("Bead positions: not measured (stopped); the model is not corrected for them.")
    return EXIT_INTERRUPTED if training is not None and training.stopped_reason == "cancelled" else 0
