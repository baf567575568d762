"""Names the window shows and suggests: who made a volume (for panel titles and export file names)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def maker_name(made_by: Mapping[str, Any] | None) -> str | None:
    """A short name for what made a volume: the model file's stem for a denoised volume, the method otherwise
    ("richardson-lucy", "training preview", "grad-cam"); None for a volume loaded from a file."""
    if not made_by:
        return None
    model = made_by.get("model")
    if isinstance(model, Mapping) and model.get("path"):
        return Path(str(model["path"])).stem
    if isinstance(model, str) and model:
        return Path(model).stem
    method = made_by.get("method")
    return str(method) if method and method != "training preview" else None  # a preview's name says it


def export_name(volume_name: str, role: str, made_by: Mapping[str, Any] | None, suffix: str = ".mat") -> str:
    """The suggested export file name: the volume's name, with the model that made it (``val_denoised_beads.mat``)
    so two predictions from different models do not get the same name."""
    base = volume_name or role
    maker = maker_name(made_by)
    if maker and maker not in base:
        base = f"{base}_{maker}"
    safe = "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in base)
    return f"{safe}{suffix}"
