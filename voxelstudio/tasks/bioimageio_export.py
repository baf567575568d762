"""Export a VoxelStudio denoiser as a BioImage Model Zoo model package (a zip with rdf.yaml, format 0.5).

The package holds a TensorFlow SavedModel traced from the model as its weights (VoxelStudio's ``.keras`` file as
``keras_v3`` weights only when the SavedModel exporter cannot run: another Keras backend), the ``.keras`` file as an
attachment (``denoise --model PACKAGE.zip`` reads it back), test input/output tensors (a crop of the bundled sample
or ``sample``, the output predicted by VoxelStudio's own inference), a cover image, a README and the model's
provenance. Everything is staged in a hidden temporary folder, checked with ``bioimageio.spec`` when it is installed
(the optional extra ``voxelstudio[bioimageio]``), zipped and renamed onto the output: nothing appears under the
final name unless the whole package was written.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio import __version__
from voxelstudio.core.atomic import temporary_directory, write_atomically
from voxelstudio.core.errors import ModelError, VolumeReadError, VolumeWriteError
from voxelstudio.core.progress import Progress, ReportFn, null_report
from voxelstudio.core.resources import sample_pair_paths
from voxelstudio.core.volume import Volume, is_constant
from voxelstudio.io import load_volume, save_volume
from voxelstudio.tasks import bioimageio_rdf as rdf
from voxelstudio.tasks.adapt import adapted_voxel_size
from voxelstudio.tasks.bioimageio_check import validate_rdf

TEST_SHAPE = (64, 64, 32)
"""Largest test crop (y, x, z): small enough to keep the package light, large enough to show beads."""
NAMES = {
    "keras": "voxelstudio_model.keras",
    "saved_model": "tf_saved_model.zip",
    "onnx": "weights.onnx",
    "test_input": "test_input.npy",
    "test_output": "test_output.npy",
    "sample_input": "sample_input.tif",
    "sample_output": "sample_output.tif",
    "cover": "cover.png",
    "documentation": "README.md",
    "provenance": "voxelstudio_provenance.json",
}
DEFAULT_LICENSE = "CC-BY-4.0"


@dataclass(frozen=True)
class ExportResult:
    """The written package, its weights formats, notes (what was left out and why) and the validator used."""

    path: Path
    weights: tuple[str, ...]
    notes: tuple[str, ...]
    validated_with: str | None


def check_output(out: str | Path, *, overwrite: bool) -> Path:
    """``out`` as a Path; one-line errors when it is not a .zip, exists without ``overwrite``, or has no folder."""
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise VolumeWriteError(out, "a BioImage Model Zoo package must end in .zip")
    if out.is_dir():
        raise VolumeWriteError(out, "is a folder, not a file")
    if out.exists() and not overwrite:
        raise VolumeWriteError(out, "already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise VolumeWriteError(out, f"folder {out.parent} does not exist")
    return out


def crop_for_test(array: Any, multiple: Sequence[int], source: str | Path) -> np.ndarray:
    """The centre of ``array`` (numpy, or lazy: Dask/Zarr) as float32, at most :data:`TEST_SHAPE`, each side a
    multiple of the model's ``multiple``."""
    sizes = []
    for size, limit, step in zip(array.shape, TEST_SHAPE, multiple, strict=True):
        side = (min(size, max(limit, step)) // step) * step
        if side < step:
            raise VolumeReadError(
                source, f"shape {array.shape} is smaller than the model's size step {tuple(multiple)}"
            )
        sizes.append(side)
    starts = [(size - side) // 2 for size, side in zip(array.shape, sizes, strict=True)]
    crop = np.ascontiguousarray(array[tuple(slice(s, s + n) for s, n in zip(starts, sizes, strict=True))], np.float32)
    if is_constant(crop):  # the package's test would show nothing and check nothing
        raise VolumeReadError(source, f"the sample's centre {crop.shape} is constant; choose a scan with beads")
    return crop


def cover_image(raw: np.ndarray, denoised: np.ndarray) -> np.ndarray:
    """An RGB uint8 picture (2:1): the z maximum projections of the test input (left) and output (right)."""

    def panel(volume: np.ndarray) -> np.ndarray:
        projection = volume.max(axis=2)
        low, high = np.percentile(projection, [0.5, 99.9])
        return np.clip((projection - low) / max(float(high - low), 1e-6), 0.0, 1.0)

    picture = np.concatenate([panel(raw), panel(denoised)], axis=1)
    zoom = max(1, -(-256 // picture.shape[0]))  # at least 256 pixels high
    picture = np.kron(picture, np.ones((zoom, zoom)))
    return np.repeat((picture * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _voxel_size(
    voxel_size: Sequence[float] | None, metadata: dict[str, Any], sample: Volume
) -> tuple[tuple[float, ...], str]:
    """The voxel size the model was trained at (y, x, z in um) and where it comes from; ValueError when nothing
    says (the package would state 1 um per axis as fact, which Fiji and the zoo take as metadata)."""
    if voxel_size is not None:
        return tuple(float(v) for v in voxel_size), "given at export"
    recorded = adapted_voxel_size(metadata)
    if recorded is not None:
        return recorded, "recorded in the model file (the scans it was adapted to)"
    if sample.known_spacing is None:
        raise ValueError(
            f"the voxel size is not known: the model file does not record it and the test sample ({sample.label}) "
            "has none; give --voxel-size Y,X,Z in µm"
        )
    return tuple(float(v) for v in sample.known_spacing), "the test sample's; the model file does not record it"


SPDX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*")
"""What an SPDX licence identifier looks like (the validator, when installed, checks it is a real one)."""


def export_bioimageio(
    model_path: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    authors: Sequence[str] = (),
    description: str | None = None,
    license: str = DEFAULT_LICENSE,
    sample: str | Path | None = None,
    voxel_size: Sequence[float] | None = None,
    overwrite: bool = False,
    validate: bool = True,
    trusted: bool = False,
    report: ReportFn = null_report,
) -> ExportResult:
    """Write ``model_path`` (a VoxelStudio ``.keras`` denoiser) as a BioImage Model Zoo package ``out`` (.zip)."""
    from voxelstudio.ml.bundled import describe_architecture
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model

    out = check_output(out, overwrite=overwrite)
    if not SPDX_ID.fullmatch(license):  # now, not after the export (and without the validator's list of every id)
        raise ValueError(f"--license: {license!r} is not an SPDX licence id (e.g. CC-BY-4.0, MIT, BSD-3-Clause)")
    model_path = Path(model_path)
    if model_path.suffix != ".keras":
        raise ModelError(model_path, "not a VoxelStudio model file (expected a .keras file)")
    report(Progress(0, 5, "loading the model"))
    loaded = load_model(model_path, trusted=trusted)
    if loaded.train_config is None:
        raise ModelError(model_path, "has no VoxelStudio training metadata; use a model saved by voxelstudio")
    cfg = loaded.train_config.model
    if cfg.spacing_input:
        raise ModelError(
            model_path, "takes the voxel size as a second input, which a BioImage Model Zoo package cannot give it"
        )
    sample_path = Path(sample) if sample is not None else sample_pair_paths()[0]
    volume = load_volume(sample_path)
    spacing, spacing_source = _voxel_size(voxel_size, loaded.metadata, volume)  # before the minutes of work
    multiple = tuple(int(m) for m in loaded.metadata.get("required_multiple") or ())
    if len(multiple) != 3:
        from voxelstudio.ml.denoisers import required_multiple

        multiple = required_multiple(cfg)
    test_input = crop_for_test(volume.data, multiple, sample_path)  # reads only the crop of a lazy (Zarr) volume
    report(Progress(1, 5, "predicting the test output"))
    test_output, _, _ = predict_volume(replace(loaded, input_shift=(0.0, 0.0, 0.0)), test_input)  # the network's
    facts = rdf.ModelFacts(
        name=name or f"VoxelStudio denoiser {re.sub(r'[^A-Za-z0-9_+() -]', '-', model_path.stem)}"[:128],
        description=description
        or f"3-D denoiser for fluorescence microscopy volumes ({describe_architecture(cfg)}), trained with VoxelStudio",
        authors=tuple(authors) or ("VoxelStudio user",),
        license=license,
        normalizer=loaded.normalizer,
        multiple=multiple,  # type: ignore[arg-type]
        receptive_field=tuple(loaded.metadata.get("receptive_field") or ()),  # type: ignore[arg-type]
        voxel_size_um=spacing,  # type: ignore[arg-type]
        voxel_size_source=spacing_source,
        architecture=describe_architecture(cfg),
        voxelstudio_version=__version__,
        train_config=loaded.train_config.to_dict(),
        saved_with={
            "voxelstudio": loaded.metadata.get("voxelstudio_version"),
            "keras": loaded.metadata.get("keras_version"),
            "saved_at": loaded.metadata.get("saved_at"),
        },
        training_result={k: v for k, v in (loaded.metadata.get("extra") or {}).items() if k.startswith("best_")},
    )
    provenance = {
        "exported_at": _now(),
        "exported_by": f"voxelstudio {__version__}",
        "source_model": {"file": model_path.name, "sha256": loaded.sha256},
        "model_metadata": loaded.metadata,
        "test_input": {"file": str(sample_path), "shape": list(test_input.shape), "spacing_um": list(volume.spacing)},
    }
    with temporary_directory(out) as stage:
        report(Progress(2, 5, "exporting the weights"))
        check_input = loaded.normalizer.before(test_input)[None, ..., None]  # what the network sees
        weights, notes, attached = _write_weights(loaded.model, model_path, stage, check_input)
        notes = [*shift_note(loaded.for_spacing(spacing).input_shift), *notes]  # in the package's voxels
        report(Progress(3, 5, "writing the package"))
        files = _write_files(stage, facts, provenance, test_input, test_output, list(weights), notes, attached)
        magnitude = max(float(np.nanmax(test_output)), 0.0)  # the spec bounds the tolerance by 1 % of the largest value
        rdf_dict = rdf.build_rdf(facts, files, weights, timestamp=_now(), output_magnitude=magnitude)
        (stage / "rdf.yaml").write_text(_yaml(rdf_dict), encoding="utf-8")
        validated_with = None
        if validate:
            report(Progress(4, 5, "validating with bioimageio.spec"))
            validated_with = validate_rdf(stage / "rdf.yaml", out)
        members = ["rdf.yaml", *_named_files(rdf_dict)]
        write_atomically(out, lambda temporary: _zip(stage, members, temporary), overwrite=overwrite)
    report(Progress(5, 5, "done"))
    return ExportResult(out, tuple(weights), tuple(notes), validated_with)


def shift_note(input_shift: Sequence[float]) -> list[str]:
    """What a package of a model with an input shift (adapt's bead-position correction) leaves out, in a note."""
    if not any(input_shift):
        return []
    shift = ", ".join(f"{v:+.2f}" for v in input_shift)
    return [
        f"VoxelStudio moves scans by (y, x, z) {shift} voxels before this network (where adapt measured it puts "
        "beads); a BioImage Model Zoo package cannot say so, so other tools' beads sit that far off the truth and the "
        "test output is the network's own"
    ]


def _write_weights(
    model: Any, model_path: Path, stage: Path, check_input: np.ndarray
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The weights entries, notes on what was left out, and the attachments to add (VoxelStudio's .keras file).

    A TensorFlow SavedModel is the weights consumers run: a ``keras_v3`` entry with VoxelStudio's custom layers
    fails ``bioimageio test`` without VoxelStudio installed, so the .keras file is attached, and is the weights
    only when no SavedModel can be made (another Keras backend).
    """
    from voxelstudio.ml.bioimageio import export_onnx, export_saved_model, keras_v3_entry, sha256_of

    keras_file = stage / NAMES["keras"]
    shutil.copyfile(model_path, keras_file)
    saved = export_saved_model(model, stage / NAMES["saved_model"], input_name=rdf.INPUT_ID, output_name=rdf.OUTPUT_ID)
    if isinstance(saved, str):
        note = f"no TensorFlow SavedModel: {saved}; the keras_v3 weights need VoxelStudio installed to load"
        return {"keras_v3": keras_v3_entry(keras_file.name, sha256_of(keras_file))}, [note], []
    weights: dict[str, Any] = {"tensorflow_saved_model_bundle": saved}
    onnx = export_onnx(
        model, stage / NAMES["onnx"], input_name=rdf.INPUT_ID, parent="tensorflow_saved_model_bundle",
        check_input=check_input,
    )  # fmt: skip
    if isinstance(onnx, str):
        return weights, [f"no ONNX copy: {onnx}"], [keras_file.name]
    return {**weights, "onnx": onnx}, [], [keras_file.name]


def _write_files(
    stage: Path,
    facts: rdf.ModelFacts,
    provenance: dict[str, Any],
    test_input: np.ndarray,
    test_output: np.ndarray,
    weights: list[str],
    notes: list[str],
    attached: list[str],
) -> rdf.PackageFiles:
    from matplotlib.image import imsave

    from voxelstudio.ml.bioimageio import sha256_of

    def tensor(key: str, array: np.ndarray) -> tuple[str, str]:
        np.save(stage / NAMES[key], np.asarray(array, dtype=np.float32)[None, ..., None])  # (b, y, x, z, c)
        return NAMES[key], sha256_of(stage / NAMES[key])

    inputs, outputs = tensor("test_input", test_input), tensor("test_output", test_output)
    samples = []
    for key, array in (("sample_input", test_input), ("sample_output", test_output)):  # for people: Fiji, napari
        save_volume(Volume(array, spacing=facts.voxel_size_um), stage / NAMES[key])  # z pages, voxel size kept
        samples.append((NAMES[key], sha256_of(stage / NAMES[key])))
    imsave(stage / NAMES["cover"], cover_image(test_input, test_output), format="png")
    (stage / NAMES["documentation"]).write_text(rdf.readme(facts, list(weights), notes), encoding="utf-8")
    text = json.dumps(provenance, indent=2, sort_keys=True, default=str)
    (stage / NAMES["provenance"]).write_text(text + "\n", encoding="utf-8")
    attachments = [NAMES["provenance"], *attached]
    return rdf.PackageFiles(
        test_input=inputs,
        test_output=outputs,
        sample_input=samples[0],
        sample_output=samples[1],
        cover=NAMES["cover"],
        documentation=NAMES["documentation"],
        attachments=tuple((name, sha256_of(stage / name)) for name in attachments),
    )


def _named_files(rdf_dict: dict[str, Any]) -> list[str]:
    """Every file the rdf names (weights, test tensors, cover, documentation, attachments), in order, once."""
    names = [rdf_dict["documentation"], *rdf_dict["covers"], *(a["source"] for a in rdf_dict["attachments"])]
    for tensor in (*rdf_dict["inputs"], *rdf_dict["outputs"]):
        names.extend(tensor[key]["source"] for key in ("test_tensor", "sample_tensor") if key in tensor)
    names.extend(entry["source"] for entry in rdf_dict["weights"].values())
    return list(dict.fromkeys(names))


def _zip(stage: Path, members: Sequence[str], target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            archive.write(stage / member, member)


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
