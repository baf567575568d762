"""Checks before a denoiser runs on a volume: enough memory for the prediction, and a voxel size the model can use.
Shared by whole-volume (:mod:`voxelstudio.tasks.denoise`) and block-wise (:mod:`voxelstudio.tasks.blockwise`)
denoising; each raises a one-line VoxelStudioError naming the volume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from voxelstudio.core.errors import VoxelStudioError
from voxelstudio.core.memory import check_available
from voxelstudio.core.volume import UNKNOWN_SPACING, Volume


def check_memory(volume: Volume, loaded: Any, *, tta: bool, tile_shape: Sequence[int] | None = None) -> int:
    """Bytes the prediction needs beyond the loaded volume; VoxelStudioError when more than is available."""
    from voxelstudio.ml.inference import plan_prediction

    plan = plan_prediction(loaded.train_config.model, volume.shape, tile_shape=tile_shape, tta=tta)
    needed = plan.host_bytes + plan.tile_bytes
    advice = "close other programs, crop the volume or give smaller --tile"
    check_available(needed, f"{volume.label}: denoising {volume.shape}", advice)
    return needed


def check_model_spacing(spacing: Sequence[float], loaded: Any, label: str) -> None:
    """VoxelStudioError naming ``label`` when ``loaded`` takes the voxel size as an input and ``spacing`` is
    unknown (a file without it) or outside the voxel sizes the model was trained on."""
    if loaded.train_config is None or not loaded.train_config.model.spacing_input:
        return
    from voxelstudio.ml.spacing import outside_range

    how = "denoise --voxel-size Y,X,Z, or Voxel size in the window's View settings"
    if tuple(spacing) == UNKNOWN_SPACING:
        raise VoxelStudioError(f"{label}: voxel size not known, and the model takes it as an input; give it ({how})")
    trained = (loaded.metadata.get("extra") or {}).get("spacing_range")
    problem = outside_range(spacing, trained) if trained else None
    if problem:
        size = "x".join(f"{s:g}" for s in spacing)
        raise VoxelStudioError(
            f"{label}: the model takes the voxel size as an input and this volume's ({size} µm) is not one it knows: "
            f"{problem}; give the scan's voxel size ({how})"
        )
