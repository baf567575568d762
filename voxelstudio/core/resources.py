"""Paths to bundled resources (sample volumes, default models).

In a wheel they live in ``voxelstudio/resources``; in a source checkout (editable install) in ``resources/`` at the
repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


BUNDLED_DENOISER = ("models", "denoiser_default.keras")
"""The bundled default denoiser, under the resources folder."""


def resources_dir() -> Path:
    """The folder holding the bundled resources."""
    for candidate in (_PACKAGE_DIR / "resources", _PACKAGE_DIR.parent / "resources"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the bundled resources folder is missing; reinstall voxelstudio")


def resource_path(*parts: str) -> Path:
    """Path of a bundled resource; raises FileNotFoundError naming it when absent."""
    path = resources_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"bundled resource {'/'.join(parts)} is missing; reinstall voxelstudio")
    return path


def sample_pair_paths() -> tuple[Path, Path]:
    """The bundled sample (raw, target) pair shown by ``voxelstudio gui --sample``: the validation pair."""
    return resource_path("sample", "raw", "val.mat"), resource_path("sample", "target", "val.mat")
