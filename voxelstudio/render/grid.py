"""Volume -> pyvista ImageData, with one documented axis convention.

A :class:`~voxelstudio.core.volume.Volume` is indexed ``data[y, x, z]`` (MATLAB order (H, W, Z)) with spacing
``(sy, sx, sz)``. VTK points are indexed ``(i, j, k)`` = (x, y, z) with x varying fastest, so:

- ImageData dimensions are ``(W, H, Z)`` and its spacing ``(sx, sy, sz)``;
- the point at VTK ``(i, j, k)`` holds ``data[j, i, k]``;
- world coordinates are micrometres: ``(i * sx, j * sy, k * sz)``.

The 3-D views look along +z with -y up (see :data:`IMAGE_VIEW_UP`), so a volume's row 0 is at the top of the screen
exactly as in the 2-D XY slice view and in MATLAB's ``imagesc``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyvista as pv

from voxelstudio.core.volume import Spacing

SCALARS = "intensity"
SOURCE_SPACING = "source_spacing"
"""Field-data entry of a reduced image: the VTK (x, y, z) spacing of the full-resolution voxels (see
:func:`display_image`); slice indices count those voxels."""
MAX_DISPLAY_VOXELS = 1 << 25
"""Bigger volumes are drawn from a block-maximum reduction (32 Mi voxels render in about 0.2 s with software OpenGL;
a 1024x1024x128 volume took 3 s to convert and draw, and every turn of the camera 0.4 s)."""

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


def to_image_data(
    data: np.ndarray, spacing: Spacing = (1.0, 1.0, 1.0), origin: Sequence[float] = (0.0, 0.0, 0.0)
) -> pv.ImageData:
    """A pyvista ImageData holding ``data`` (H, W, Z) as point scalars named :data:`SCALARS`; ``origin`` is VTK
    (x, y, z) in micrometres."""
    scalars = to_vtk_scalars(data)
    height, width, depth = data.shape
    image = pv.ImageData(dimensions=(width, height, depth), spacing=vtk_spacing(spacing), origin=tuple(origin))
    image.point_data[SCALARS] = scalars
    image.set_active_scalars(SCALARS)
    return image


def display_factors(shape: Sequence[int], max_voxels: int = MAX_DISPLAY_VOXELS) -> tuple[int, int, int]:
    """Block sizes (y, x, z) that bring ``shape`` under ``max_voxels``: y and x first (scans are wide and shallow),
    z only when that is not enough."""
    height, width, depth = (int(n) for n in shape)
    lateral = 1
    while (height // lateral) * (width // lateral) * depth > max_voxels and min(height, width) // (lateral + 1) >= 2:
        lateral += 1
    axial = 1
    while (height // lateral) * (width // lateral) * (depth // axial) > max_voxels and depth // (axial + 1) >= 2:
        axial += 1
    return (lateral, lateral, axial)


def display_image(
    data: np.ndarray, spacing: Spacing, max_voxels: int = MAX_DISPLAY_VOXELS, *, signed: bool = False
) -> pv.ImageData:
    """``data`` as ImageData for the 3-D views: as it is, or reduced to block maxima when it has more than
    ``max_voxels`` voxels (maxima keep small bright beads visible in projections; up to one block less than a
    block at the far edges is left out); ``signed`` data (a residual) keeps each block's value of largest
    magnitude, with its sign. A reduced image's voxels sit at their blocks' centres and it records the
    full-resolution spacing as :data:`SOURCE_SPACING`. A single plane is drawn as a slab one z step thick centred
    on it (a grid with no depth shows nothing when ray cast)."""
    if data.shape[2] == 1:
        image = display_image(np.repeat(data, 2, axis=2), spacing, max_voxels, signed=signed)
        x, y, z = image.origin
        image.origin = (x, y, z - spacing[2] / 2)
        return image
    factors = display_factors(data.shape, max_voxels)
    if factors == (1, 1, 1):
        return to_image_data(data, spacing)
    (fy, fx, fz), (height, width, depth) = factors, data.shape
    blocks = data[: height - height % fy, : width - width % fx, : depth - depth % fz]
    blocks = blocks.reshape(height // fy, fy, width // fx, fx, depth // fz, fz)
    reduced = blocks.max(axis=(1, 3, 5))
    if signed:
        lowest = blocks.min(axis=(1, 3, 5))
        reduced = np.where(-lowest > reduced, lowest, reduced)
    block_spacing = tuple(s * f for s, f in zip(spacing, factors, strict=True))
    centre_offset = [(f - 1) / 2 * s for s, f in zip(spacing, factors, strict=True)]  # (y, x, z)
    image = to_image_data(reduced, block_spacing, origin=(centre_offset[1], centre_offset[0], centre_offset[2]))
    image.field_data[SOURCE_SPACING] = np.asarray(vtk_spacing(spacing))
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
