"""Pure-numpy foundations: the Volume model, errors, progress reporting and normalisation."""

from voxelstudio.core.errors import (
    Cancelled,
    ModelError,
    VolumeReadError,
    VolumeWriteError,
    VoxelStudioError,
)
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Spacing, Volume

__all__ = [
    "CancelToken",
    "Cancelled",
    "ModelError",
    "Progress",
    "ReportFn",
    "Spacing",
    "Volume",
    "VolumeReadError",
    "VolumeWriteError",
    "VoxelStudioError",
    "null_report",
]
