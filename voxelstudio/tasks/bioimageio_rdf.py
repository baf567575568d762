"""The rdf.yaml and README.md of a BioImage Model Zoo package, as plain data (bioimageio.spec model format 0.5).

A VoxelStudio denoiser maps (batch, y, x, z, channel) to the same shape; our volumes are (H, W, Z) = (y, x, z).
Its :class:`~voxelstudio.core.normalize.PercentileNormalizer` is the spec's ``scale_range`` preprocessing (per
sample, over y, x and z; ``(x - p_low) / (p_high - p_low + eps)``) and, when the target range is not [0, 1], a
``scale_linear`` postprocessing (``y * (out_high - out_low) + out_low``). No IO happens here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from voxelstudio.core.normalize import PercentileNormalizer

FORMAT_VERSION = "0.5.4"
"""The model RDF format written. bioimageio.spec 0.5.12 and 0.5.14 both validate it (reading it as their latest
0.5); a 0.5.12/0.5.14 header would need covers and documentation as {source, sha256} entries that 0.5.12 rejects
as plain file names, and 0.5 readers such as deepImageJ know 0.5.4."""
INPUT_ID = "raw"
OUTPUT_ID = "denoised"
SPACE_AXES = ("y", "x", "z")
EPS = 1e-6
CARE_CITATION = {
    "text": "Weigert et al., Content-aware image restoration: pushing the limits of fluorescence microscopy, "
    "Nature Methods 15, 1090-1097 (2018)",
    "doi": "10.1038/s41592-018-0216-7",
}


@dataclass(frozen=True)
class PackageFiles:
    """File names inside the package and their SHA-256 (hex), as the rdf names them."""

    test_input: tuple[str, str]
    test_output: tuple[str, str]
    sample_input: tuple[str, str]
    sample_output: tuple[str, str]
    cover: str
    documentation: str
    attachments: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ModelFacts:
    """What the rdf says about the model: names, normalisation, sizes, voxel size and provenance."""

    name: str
    description: str
    authors: tuple[str, ...]
    license: str
    normalizer: PercentileNormalizer
    multiple: tuple[int, int, int]
    receptive_field: tuple[int, int, int]
    voxel_size_um: tuple[float, float, float]
    voxel_size_source: str
    architecture: str
    voxelstudio_version: str
    train_config: Mapping[str, Any]
    saved_with: Mapping[str, Any]
    training_result: Mapping[str, Any]


def preprocessing(normalizer: PercentileNormalizer) -> list[dict[str, Any]]:
    """The normaliser's ``before`` step: percentiles of each sample over its spatial axes."""
    kwargs = {
        "axes": list(SPACE_AXES),
        "min_percentile": float(normalizer.p_low),
        "max_percentile": float(normalizer.p_high),
        "eps": EPS,
    }
    return [{"id": "scale_range", "kwargs": kwargs}]


def postprocessing(normalizer: PercentileNormalizer) -> list[dict[str, Any]]:
    """The normaliser's ``after`` step; none when it is the identity (the spec forbids gain 1 with offset 0)."""
    gain, offset = float(normalizer.out_high - normalizer.out_low), float(normalizer.out_low)
    if gain == 1.0 and offset == 0.0:
        return []
    return [{"id": "scale_linear", "kwargs": {"gain": gain, "offset": offset}}]


def _axes(facts: ModelFacts, *, output: bool) -> list[dict[str, Any]]:
    axes: list[dict[str, Any]] = [{"type": "batch"}]
    for axis, step, scale in zip(SPACE_AXES, facts.multiple, facts.voxel_size_um, strict=True):
        size: Any = {"tensor_id": INPUT_ID, "axis_id": axis} if output else {"min": int(step), "step": int(step)}
        axes.append({"type": "space", "id": axis, "size": size, "scale": float(scale), "unit": "micrometer"})
    axes.append({"type": "channel", "channel_names": ["intensity"]})
    return axes


REPRODUCIBILITY = 1e-3
"""How closely a consumer must reproduce the test output: this fraction of its largest value, absolute, and this
fraction of each value (the spec's default, 1e-3 absolute, is refused when the output's maximum is below 0.1, as for
a briefly trained model)."""


def build_rdf(
    facts: ModelFacts,
    files: PackageFiles,
    weights: Mapping[str, Mapping[str, Any]],
    *,
    timestamp: str,
    output_magnitude: float = 1.0,
) -> dict[str, Any]:
    """The model RDF as a dict ready for ``yaml.safe_dump``; ``weights`` maps weights formats to their entries."""
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": facts.name,
        "description": facts.description,
        "authors": [{"name": author} for author in facts.authors],
        "cite": [CARE_CITATION],
        "license": facts.license,
        "tags": ["denoising", "3d", "fluorescence-light-microscopy", "voxelstudio", "keras"],
        "documentation": files.documentation,
        "covers": [files.cover],
        "timestamp": timestamp,
        "attachments": [{"source": name, "sha256": digest} for name, digest in files.attachments],
        "inputs": [
            {
                "id": INPUT_ID,
                "description": "raw volume, one channel, (y, x, z) as VoxelStudio reads it",
                "axes": _axes(facts, output=False),
                "test_tensor": {"source": files.test_input[0], "sha256": files.test_input[1]},
                "sample_tensor": {"source": files.sample_input[0], "sha256": files.sample_input[1]},
                "data": {"type": "float32"},
                "preprocessing": preprocessing(facts.normalizer),
            }
        ],
        "outputs": [
            {
                "id": OUTPUT_ID,
                "description": "denoised volume in the training target's units",
                "axes": _axes(facts, output=True),
                "test_tensor": {"source": files.test_output[0], "sha256": files.test_output[1]},
                "sample_tensor": {"source": files.sample_output[0], "sha256": files.sample_output[1]},
                "data": {"type": "float32"},
                "postprocessing": postprocessing(facts.normalizer),
            }
        ],
        "weights": {name: dict(entry) for name, entry in weights.items()},
        "config": {
            "bioimageio": {
                "reproducibility_tolerance": [
                    {"absolute_tolerance": REPRODUCIBILITY * output_magnitude, "relative_tolerance": REPRODUCIBILITY}
                ]
            },
            "voxelstudio": {
                "version": facts.voxelstudio_version,
                "architecture": facts.architecture,
                "receptive_field": list(facts.receptive_field),
                "voxel_size_um_yxz": list(facts.voxel_size_um),
                "voxel_size_source": facts.voxel_size_source,
                "normalizer": facts.normalizer.to_dict(),
                "saved_with": dict(facts.saved_with),
                "train_config": dict(facts.train_config),
            },
        },
    }


def readme(facts: ModelFacts, weights: Sequence[str], notes: Sequence[str] = ()) -> str:
    """The package's documentation: what the model does, what it expects, how it was made, how to run it."""
    n = facts.normalizer
    y, x, z = facts.voxel_size_um
    multiple = " x ".join(str(m) for m in facts.multiple)
    field = " x ".join(str(r) for r in facts.receptive_field)
    post = (
        f"then `scale_linear` (gain {n.out_high - n.out_low:g}, offset {n.out_low:g}) maps the network's [0, 1] "
        "back to the training target's units."
        if postprocessing(n)
        else "the output is in the training target's units, [0, 1], without postprocessing."
    )
    versions = [f"{key} {value}" for key, value in facts.saved_with.items() if value and key != "saved_at"]
    saved = ", ".join(versions) + (f" at {facts.saved_with['saved_at']}" if facts.saved_with.get("saved_at") else "")
    lines = [
        f"# {facts.name}",
        "",
        facts.description,
        "",
        "## What it does",
        f"A 3-D convolutional denoiser ({facts.architecture}) trained with VoxelStudio: it maps a noisy, blurred "
        "fluorescence volume to a clean estimate of the same shape. It sees "
        f"{field} voxels (y x z) around each output voxel (its receptive field).",
        "",
        "## Input and normalisation",
        f"- One channel, axes (batch, y, x, z, channel), float32; y, x and z must be multiples of {multiple}.",
        f"- Voxel size it was trained at: y={y:g} x={x:g} z={z:g} micrometre ({facts.voxel_size_source}). "
        "Volumes at another voxel size should be resampled first.",
        f"- Preprocessing: each volume is scaled by its own {n.p_low:g} and {n.p_high:g} percentiles "
        "(`scale_range` over y, x, z): the low percentile becomes 0, the high one 1 (VoxelStudio's "
        "PercentileNormalizer).",
        f"- Postprocessing: {post}",
        "",
        "## Weights",
        *[f"- `{name}`" for name in weights],
        "",
        "The TensorFlow SavedModel needs only TensorFlow (bioimageio.core, deepImageJ). VoxelStudio's own model "
        "file, `voxelstudio_model.keras`, is attached (as `keras_v3` weights when no SavedModel could be made): "
        "loading it in Keras needs VoxelStudio's custom layers (`pip install voxelstudio`), which is why it is not "
        "the weights other tools are pointed to.",
        "",
        "## How to run it",
        "- VoxelStudio: `voxelstudio denoise VOLUME --model THIS_PACKAGE.zip`",
        "- bioimageio.core: `bioimageio predict THIS_PACKAGE.zip` or `bioimageio test THIS_PACKAGE.zip`",
        "",
        "## Validation",
        _validation_text(facts.training_result),
        "The test input (`test_input.npy`, also `sample_input.tif`) is a crop of the sample volume; the test output "
        "is VoxelStudio's own prediction of it (whole crop, normalised as above), so `bioimageio test` checks that a "
        "consumer reproduces VoxelStudio.",
        "",
        "## Provenance",
        f"Exported by VoxelStudio {facts.voxelstudio_version}; model saved with {saved or 'unknown versions'}. "
        "The training configuration is in `rdf.yaml` under `config.voxelstudio.train_config` and, with all of the "
        "model file's metadata, in the attached `voxelstudio_provenance.json`.",
        *([""] + [f"- {note}" for note in notes] if notes else []),
        "",
    ]
    return "\n".join(lines)


def _validation_text(result: Mapping[str, Any]) -> str:
    """The training run's best validation loss, when the model file recorded it."""
    loss, epoch = result.get("best_val_loss"), result.get("best_epoch")
    if not isinstance(loss, (int, float)):
        return "The model file records no validation loss."
    where = f" at epoch {int(epoch)}" if isinstance(epoch, (int, float)) else ""
    return f"Best validation loss during training: {float(loss):.4g}{where} (the training loss on held-out pairs)."
