"""Provenance: the one place that builds the records of where a volume came from and what made it, and writes them
as a JSON sidecar next to the volume (``pred.mat`` -> ``pred.mat.json``).

Used by ``voxelstudio denoise`` (through :mod:`voxelstudio.tasks.denoise`) and by the window's export. It lives in
core, below tasks, because the CLI's batch denoiser in tasks/ writes sidecars too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voxelstudio import __version__
from voxelstudio.core.volume import Volume


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sidecar_path(path: Path) -> Path:
    """The provenance file next to an exported volume: ``pred.mat`` -> ``pred.mat.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def input_record(
    source: Path | None, name: str, shape: Sequence[int], spacing: Sequence[float], variable: str | None
) -> dict[str, Any]:
    """What a provenance record says about an input volume (also one read lazily, block by block)."""
    return {
        "path": None if source is None else str(Path(source).resolve()),
        "name": name,
        "shape": list(shape),
        "spacing": list(spacing),
        "variable": variable,
    }


def volume_record(volume: Volume) -> dict[str, Any]:
    """:func:`input_record` of a loaded volume."""
    return input_record(volume.source, volume.name, volume.shape, volume.spacing, volume.metadata.get("variable"))


def model_record(loaded: Any) -> dict[str, Any]:
    """What a loaded model (``ml.persistence.LoadedModel``) says about itself: hash, save time, config, normaliser,
    and the shifts it moves scans by, if any."""
    record = {
        "sha256": loaded.sha256,
        "saved_at": loaded.metadata.get("saved_at"),
        "train_config": loaded.train_config.to_dict(),
        "normalizer": loaded.normalizer.to_dict(),
    }
    shifts = {"input_shift_vox": loaded.input_shift, "flipped_input_shift_vox": loaded.flipped_input_shift}
    for key, shift in shifts.items():
        if shift is not None and any(shift):
            record[key] = list(shift)
    return record


def denoise_provenance(
    volume: Volume | Mapping[str, Any],
    model_path: Path,
    model: Mapping[str, Any],
    tiling: Mapping[str, Any],
    runtime: Mapping[str, Any],
) -> dict[str, Any]:
    """How a denoised volume was made: its input (a ``volume`` or an :func:`input_record`), the model file and
    what the model file says about itself (``model``: :func:`model_record`), the tiling, and the versions and
    device (``runtime``, as :func:`voxelstudio.ml.inference.runtime_info` gives them)."""
    return {
        "created_at": _now(),
        "input": volume_record(volume) if isinstance(volume, Volume) else dict(volume),
        "model": {"path": str(Path(model_path).resolve()), **model},
        "tiling": dict(tiling),
        "versions": {"voxelstudio": __version__, **runtime["versions"]},
        "device": runtime["device"],
    }


def export_provenance(
    role: str, volume: Volume, made_by: Mapping[str, Any] | None, inputs: Mapping[str, Path]
) -> dict[str, Any]:
    """What to record about an exported volume: its role, shape and spacing, its source file or the job that made
    it (``made_by``, e.g. a :func:`denoise_provenance` record), and the files the session's volumes were loaded
    from (``inputs``)."""
    return {
        "role": role,
        "name": volume.name,
        "shape": list(volume.shape),
        "spacing_um_yxz": list(volume.spacing),
        "source": None if volume.source is None else str(volume.source),
        "made_by": dict(made_by) if made_by else {"method": "loaded from file"},
        "inputs": {name: str(path) for name, path in inputs.items()},
        "voxelstudio_version": __version__,
        "exported_at": _now(),
    }


def write_sidecar(volume_path: Path, record: Mapping[str, Any], *, overwrite: bool = True) -> Path:
    """Write ``record`` as JSON next to ``volume_path`` (see :func:`sidecar_path`), atomically; returns its path."""
    from voxelstudio.core.atomic import write_atomically

    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    return write_atomically(
        sidecar_path(volume_path), lambda temporary: temporary.write_text(text, encoding="utf-8"), overwrite=overwrite
    )
