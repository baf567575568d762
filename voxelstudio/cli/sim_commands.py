"""``voxelstudio simulate OUTDIR``: write simulated (raw, target) bead pairs for training and testing."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

from voxelstudio.cli.progress import EXIT_INTERRUPTED, cancel_on_interrupt, tqdm_report
from voxelstudio.core.atomic import same_file
from voxelstudio.core.errors import Cancelled

# option name -> OpticsParams / SimParams field it sets
OPTICS_OPTIONS = {
    "na": "na",
    "wavelength": "wavelength_um",
    "ni": "ni",
    "ns": "ns",
    "depth": "depth_um",
    "coverslip-index": "ng",
    "coverslip-thickness": "tg_um",
}
SAMPLE_OPTIONS = {
    "bead-density": "bead_density",
    "bead-sigma": "bead_sigma_vox",
    "brightness-spread": "brightness_spread",
    "background": "background",
    "background-variation": "background_variation",
    "background-scale": "background_scale_um",
    "haze": "haze",
    "haze-sigma": "haze_sigma_um",
    "photons": "photons",
    "read-noise": "read_noise",
    "offset": "offset",
    "out-of-stack": "out_of_stack",
}


def _field_help(cls: type, name: str) -> str:
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    low, high = field.metadata["range"]
    return f"{field.metadata['doc']} [default {field.default:g}; {low:g} to {high:g}]"


def register(subparsers: Any) -> None:
    from voxelstudio.sim.params import OpticsParams, SimParams  # numpy only: keeps --help fast

    parser = subparsers.add_parser(
        "simulate",
        help="simulate raw/target bead volume pairs",
        description="Simulate pairs of bead volumes: OUTDIR/raw/NNN.mat (widefield image: Gibson-Lanni PSF, haze, "
        "background, shot and read noise, in camera counts) and OUTDIR/target/NNN.mat (the beads as compact "
        "blobs in [0, 1]), variable 'voxel', plus OUTDIR/params.json.",
    )
    parser.add_argument("outdir", metavar="OUTDIR", help="folder to write raw/, target/ and params.json into")
    parser.add_argument("--count", default="5", metavar="N", help="number of pairs [default 5]")
    parser.add_argument("--seed", default="0", metavar="S", help="random seed [default 0]")
    parser.add_argument("--shape", default="128,128,32", metavar="H,W,Z", help="volume shape [default 128,128,32]")
    parser.add_argument(
        "--randomize", action="store_true", help="draw every physics parameter from its range for each pair"
    )
    parser.add_argument(
        "--params",
        metavar="PARAMS.json",
        help="simulator parameters from `voxelstudio calibrate` (with its measured PSF, if any) or a SimParams JSON",
    )
    parser.add_argument(
        "--jitter",
        default="0",
        metavar="J",
        help="draw each pair's parameters within ±J (relative; a sample's index: of its mismatch with the immersion) "
        "of the given ones",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    optics = parser.add_argument_group("optics")
    for option, name in OPTICS_OPTIONS.items():
        optics.add_argument(f"--{option}", metavar="X", help=_field_help(OpticsParams, name))
    ranges, default = OpticsParams.ranges(), OpticsParams().voxel_size_um
    optics.add_argument(
        "--voxel-size",
        metavar="Y,X,Z",
        help="voxel size in µm (Y must equal X) [default {}; lateral {:g} to {:g}, axial {:g} to {:g}]".format(
            ",".join(f"{v:g}" for v in default), *ranges["pixel_um"], *ranges["z_step_um"]
        ),
    )
    sample = parser.add_argument_group("beads, ambient light and camera")
    for option, name in SAMPLE_OPTIONS.items():
        sample.add_argument(f"--{option}", metavar="X", help=_field_help(SimParams, name))
    parser.set_defaults(func=run)


def _number(option: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--{option}: expected a number, got {text!r}") from None


def _integer(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--{option}: expected an integer, got {text!r}") from None


def _numbers(option: str, text: str, count: int, convert: Any) -> tuple[Any, ...]:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) != count:
        raise ValueError(f"--{option}: expected {count} comma-separated values, got {text!r}")
    return tuple(convert(option, p.strip()) for p in parts)


def _build(cls: Any, values: dict[str, Any], option_of: dict[str, str]) -> Any:
    """``cls(**values)``, naming the option whose value a ValueError is about (``option_of``: field -> option)."""
    try:
        return cls(**values)
    except ValueError as exc:
        message = str(exc)
        option = next((o for name, o in option_of.items() if message.startswith(f"{name} ")), None)
        raise ValueError(f"--{option}: {message}" if option else message) from None


def params_from_args(args: argparse.Namespace) -> Any:
    """SimParams with the given options replacing the defaults; None when no physics option was given."""
    from voxelstudio.sim.params import OpticsParams, SimParams

    optics: dict[str, float] = {}
    sample: dict[str, float] = {}
    given: list[str] = []
    for options, values in ((OPTICS_OPTIONS, optics), (SAMPLE_OPTIONS, sample)):
        for option, name in options.items():
            text = getattr(args, option.replace("-", "_"))
            if text is not None:
                values[name] = _number(option, text)
                given.append(option)
    if args.voxel_size is not None:
        y, x, z = _numbers("voxel-size", args.voxel_size, 3, _number)
        if not all(math.isfinite(v) and v > 0 for v in (y, x, z)):
            raise ValueError(f"--voxel-size: expected three positive numbers (µm), got {args.voxel_size!r}")
        if y != x:
            raise ValueError(f"--voxel-size: Y and X must be equal (square pixels), got {args.voxel_size!r}")
        optics.update(pixel_um=y, z_step_um=z)
        given.append("voxel-size")
    if not given:
        return None
    if args.randomize:
        raise ValueError(f"--randomize draws every parameter; drop --{', --'.join(given)}")
    option_of = {name: option for option, name in {**OPTICS_OPTIONS, **SAMPLE_OPTIONS}.items()}
    option_of.update(pixel_um="voxel-size", z_step_um="voxel-size")
    return _build(SimParams, {"optics": _build(OpticsParams, optics, option_of), **sample}, option_of)


def run(args: argparse.Namespace) -> int:
    from voxelstudio.tasks.simulate import simulate_dataset

    count = _integer("count", args.count)
    seed = _integer("seed", args.seed)
    shape = _numbers("shape", args.shape, 3, _integer)
    if count < 1:
        raise ValueError(f"--count: must be at least 1, got {count}")
    if seed < 0:
        raise ValueError(f"--seed: must not be negative, got {seed}")
    if min(shape) < 1:
        raise ValueError(f"--shape: sizes must be positive, got {args.shape!r}")
    jitter = _number("jitter", args.jitter)
    if not 0 <= jitter < 1:
        raise ValueError(f"--jitter: must be in [0, 1), got {args.jitter!r}")
    if args.randomize and jitter > 0:
        raise ValueError("--randomize draws every parameter; drop --jitter")
    params = params_from_args(args)
    psf = None
    if args.params is not None:
        from voxelstudio.tasks.calibration_file import load_params

        if params is not None:
            raise ValueError("--params gives every physics parameter; drop the other physics options")
        if args.randomize:
            raise ValueError("--randomize draws every parameter; drop --params")
        params, psf, _ = load_params(args.params)
    outdir = Path(args.outdir)
    if args.params is not None and same_file(args.params, outdir / "params.json"):
        raise ValueError(
            f"--params {args.params} is where simulate writes its own record of the pairs; keep the calibration "
            "elsewhere (e.g. calibrate --out scope.json)"
        )
    try:  # Ctrl-C stops between pairs: every pair written is whole and listed in params.json
        with cancel_on_interrupt() as cancel, tqdm_report("simulate", quiet=args.quiet) as report:
            pairs = simulate_dataset(
                outdir,
                count=count,
                seed=seed,
                shape=shape,
                params=params,
                randomize=args.randomize,
                jitter=jitter,
                psf=psf,
                overwrite=args.overwrite,
                report=report,
                cancel=cancel,
            )
    except Cancelled:
        done = len(_listed_pairs(outdir))
        print(f"voxelstudio: simulation stopped; the {done} finished pair(s) in {outdir} are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"wrote {len(pairs)} pairs to {outdir} (raw/, target/, params.json)")
    return EXIT_INTERRUPTED if cancel.cancelled else 0  # Ctrl-C during the last pair, which finished


def _listed_pairs(outdir: Path) -> list[object]:
    """The pairs ``params.json`` lists (none when it is missing or unreadable)."""
    import json

    from voxelstudio.tasks.simulate import PARAMS_FILE

    try:
        return list(json.loads((outdir / PARAMS_FILE).read_text(encoding="utf-8"))["pairs"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
