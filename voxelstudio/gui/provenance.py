"""The provenance sidecar written next to every exported volume: where the data came from and what made it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from voxelstudio import __version__
from voxelstudio.core.volume import Volume


def sidecar_path(path: Path) -> Path:
    """The provenance file next to an exported volume: ``pred.mat`` -> ``pred.mat.json``."""
    return path.with_name(path.name + ".json")


def export_provenance(
    role: str, volume: Volume, made_by: Mapping[str, Any] | None, inputs: Mapping[str, Path]
) -> dict[str, Any]:
    """What to record about an exported volume: its role, shape and spacing, its source file or the job that made
    it (``made_by``), and the files the session's volumes were loaded from (``inputs``)."""
    return {
        "role": role,
        "name": volume.name,
        "shape": list(volume.shape),
        "spacing_um_yxz": list(volume.spacing),
        "source": None if volume.source is None else str(volume.source),
        "made_by": dict(made_by) if made_by else {"method": "loaded from file"},
        "inputs": {name: str(path) for name, path in inputs.items()},
        "voxelstudio_version": __version__,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_json_atomically(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as JSON through a temporary file and a rename (no partial file on failure)."""
    from voxelstudio.core.atomic import write_atomically

    text = json.dumps(data, indent=2, default=str)
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), overwrite=True)
