"""Volume -> pyvista ImageData, with one documented axis convention.

A :class:`~voxelstudio.core.volume.Volume` is indexed ``data[y, x, z]`` (MATLAB order (H, W, Z)) with spacing
``(sy, sx, sz)``. VTK points are indexed ``(i, j, k)`` = (x, y, z) with x varying fastest, so:

- ImageData dimensions are ``(W, H, Z)`` and its spacing ``(sx, sy, sz)``;
- the point at VTK ``(i, j, k)`` holds ``data[j, i, k]``;
- world coordinates are micrometres: ``(i * sx, j * sy, k * sz)``.

The 3-D views look along +z with -y up (see :func:`image_view_up`), so a volume's row 0 is at the top of the screen
exactly as in the 2-D XY slice view and in MATLAB's ``imagesc``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyvista as pv

from voxelstudio.core.volume import Spacing

SCALARS = "intensity"

IMAGE_VIEW_UP = (0.0, -1.0, 0.0)
"""Camera view-up that puts row 0 (y = 0) at the top of the screen."""


def vtk_spacing(spacing: Spacing) -> tuple[float, float, float]:
    """VTK (x, y, z) spacing from a Volume's (y, x, z) spacing."""
    sy, sx, sz = spacing
    return (float(sx), float(sy), float(sz))


def to_vtk_scalars(data: np.ndarray) -> np.ndarray:
    """Flatten a (H, W, Z) array into VTK point order (x fastest, then y, then z)."""
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D (H, W, Z) array, got shape {data.shape}")
    return np.ascontiguousarray(np.transpose(data, (2, 0, 1)), dtype=np.float32).ravel()


def to_image_data(data: np.ndarray, spacing: Spacing = (1.0, 1.0, 1.0)) -> pv.ImageData:
    """A pyvista ImageData holding ``data`` (H, W, Z) as point scalars named :data:`SCALARS`."""
    scalars = to_vtk_scalars(data)
    height, width, depth = data.shape
    image = pv.ImageData(dimensions=(width, height, depth), spacing=vtk_spacing(spacing))
    image.point_data[SCALARS] = scalars
    image.set_active_scalars(SCALARS)
    return image


def world_point(index_yxz: Sequence[int], spacing: Spacing) -> tuple[float, float, float]:
    """World (VTK x, y, z) position in micrometres of the voxel ``(y, x, z)``."""
    y, x, z = index_yxz
    sy, sx, sz = spacing
    return (x * sx, y * sy, z * sz)


def nice_length(span: float) -> float:
    """A round length (1, 2 or 5 times a power of ten) of about a fifth of ``span``, for a scale bar."""
    if span <= 0:
        raise ValueError("span must be positive")
    target = span / 5.0
    power = 10.0 ** np.floor(np.log10(target))
    for step in (5.0, 2.0, 1.0):
        if step * power <= target:
            return float(step * power)
    return float(power)
