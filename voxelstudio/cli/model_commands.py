"""``voxelstudio export-model MODEL.keras --bioimageio OUT.zip``: a denoiser as a BioImage Model Zoo package."""

from __future__ import annotations

import argparse
from typing import Any

from voxelstudio.cli.progress import tqdm_report


def register(subparsers: Any) -> None:
    export = subparsers.add_parser(
        "export-model",
        help="export a denoiser as a BioImage Model Zoo package (Fiji/deepImageJ, ilastik, bioimage.io)",
        description="Write MODEL (a VoxelStudio .keras denoiser) as a BioImage Model Zoo package: rdf.yaml (model "
        "format 0.5) with the axes, voxel size and the model's percentile normalisation as pre/postprocessing; "
        "TensorFlow SavedModel weights (and an ONNX copy when tf2onnx is installed), the .keras file attached; "
        "test input/output predicted by VoxelStudio from a crop of the bundled sample (or --sample); a cover "
        "image, a README and the training provenance. The package is checked with bioimageio.spec when installed "
        "(pip install bioimageio.spec tf2onnx onnx onnxruntime) and written atomically. "
        "'voxelstudio denoise --model OUT.zip' reads it back.",
    )
    export.add_argument("model", metavar="MODEL.keras", help="the denoiser to export")
    export.add_argument("--bioimageio", required=True, metavar="OUT.zip", help="the package to write")
    export.add_argument("--name", help="model name: letters, digits, spaces, _+-() [default: from MODEL]")
    export.add_argument("--authors", metavar="NAMES", help="comma-separated author names")
    export.add_argument("--description", help="one-sentence description [default: from the architecture]")
    export.add_argument("--license", default="CC-BY-4.0", help="SPDX licence of the weights [default CC-BY-4.0]")
    export.add_argument("--sample", metavar="RAW", help="raw volume for the test tensors [default: bundled sample]")
    export.add_argument(
        "--voxel-size", metavar="Y,X,Z", help="voxel size the model was trained at, in um [default: the model "
        "file's record, else the sample's]",
    )  # fmt: skip
    export.add_argument("--no-validate", action="store_true", help="do not check the package with bioimageio.spec")
    export.add_argument("--trust", action="store_true", help="allow model files that contain code")
    export.add_argument("--overwrite", action="store_true", help="replace OUT.zip if it exists")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(func=run_export)


def _voxel_size(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 < v < float("inf") for v in values):
        raise ValueError(f"--voxel-size: expected three positive numbers Y,X,Z in um, got {text!r}")
    return values  # type: ignore[return-value]


def _name(text: str | None) -> str | None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")
    if text is not None and (not 5 <= len(text) <= 128 or not set(text) <= allowed):
        raise ValueError(f"--name: 5 to 128 letters, digits, spaces and _+-() (the zoo's rule), got {text!r}")
    return text


def run_export(args: argparse.Namespace) -> int:
    from voxelstudio.tasks.bioimageio_check import INSTALL_HINT
    from voxelstudio.tasks.bioimageio_export import check_output, export_bioimageio

    check_output(args.bioimageio, overwrite=args.overwrite)  # before the model loads
    authors = [a.strip() for a in (args.authors or "").split(",") if a.strip()]
    with tqdm_report("export", quiet=args.quiet) as report:
        result = export_bioimageio(
            args.model, args.bioimageio, name=_name(args.name), authors=authors, description=args.description,
            license=args.license, sample=args.sample, voxel_size=_voxel_size(args.voxel_size),
            overwrite=args.overwrite, validate=not args.no_validate, trusted=args.trust, report=report,
        )  # fmt: skip
    checked = result.validated_with or (
        "not checked (--no-validate)" if args.no_validate else f"not checked ({INSTALL_HINT})"
    )
    print(f"{result.path}: weights {', '.join(result.weights)}; {checked}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0
