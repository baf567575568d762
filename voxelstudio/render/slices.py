"""Orthogonal 2-D slices of an (H, W, Z) array, oriented the way the slice views draw them.

- XY at depth ``z``: ``data[:, :, z]``, rows = y (down), columns = x.
- XZ at row ``y``: ``data[y, :, :].T``, rows = z (down), columns = x; drawn under the XY view. Axial elongation of
  the point spread function shows here.
- YZ at column ``x``: ``data[:, x, :]``, rows = y (down), columns = z; drawn right of the XY view.

Extents are in micrometres, ``(left, right, bottom, top)`` as matplotlib's ``imshow`` takes them with row 0 on top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from voxelstudio.core.volume import Spacing

PLANES = ("xy", "xz", "yz")


class OrthoSlices(NamedTuple):
    xy: np.ndarray
    xz: np.ndarray
    yz: np.ndarray


def clamp_index(index_yxz: Sequence[int], shape: Sequence[int]) -> tuple[int, int, int]:
    """``index_yxz`` clipped into ``shape``."""
    return tuple(int(min(max(i, 0), n - 1)) for i, n in zip(index_yxz, shape, strict=True))  # type: ignore[return-value]


def centre_index(shape: Sequence[int]) -> tuple[int, int, int]:
    """The voxel at the centre of ``shape``."""
    return tuple(int(n // 2) for n in shape)  # type: ignore[return-value]


def rescale_index(index_yxz: Sequence[int], old_shape: Sequence[int], new_shape: Sequence[int]) -> tuple[int, int, int]:
    """The voxel of ``new_shape`` at the same place in the sample as ``index_yxz`` of ``old_shape`` (another
    resolution level of one volume): to a coarser level the block holding it, to a finer one the middle voxel of
    its block (as the slice views read full-resolution planes)."""
    index = []
    for i, old, new in zip(index_yxz, old_shape, new_shape, strict=True):
        if new >= old:
            factor = level_factor(old, new)
            index.append(math.floor(i * factor + (factor - 1) / 2))
        else:
            index.append(i // level_factor(new, old))
    return clamp_index(index, new_shape)


def level_factor(coarse: int, fine: int) -> int:
    """The whole factor by which one axis of ``fine`` voxels was reduced to ``coarse``: the smallest power of two
    that gives that size rounded up (our pyramids: 259 -> 130 is 2, 100 -> 7 is 16) or down (some other writers),
    else the nearest whole ratio. (Rounding the ratio alone read 100 -> 7 as 14.)"""
    fine, coarse = int(fine), max(int(coarse), 1)
    factor = 1
    while factor <= fine:
        if -(-fine // factor) == coarse or fine // factor == coarse:
            return factor
        factor *= 2
    return max(1, round(fine / coarse))


def orthogonal_slices(data: np.ndarray, index_yxz: Sequence[int]) -> OrthoSlices:
    """The three planes through voxel ``(y, x, z)`` (clamped into the array)."""
    y, x, z = clamp_index(index_yxz, data.shape)
    return OrthoSlices(xy=data[:, :, z], xz=data[y, :, :].T, yz=data[:, x, :])


def plane_extents(shape: Sequence[int], spacing: Spacing) -> dict[str, tuple[float, float, float, float]]:
    """imshow extents (left, right, bottom, top) in micrometres for each plane, voxel centres on integer steps."""
    height, width, depth = shape
    sy, sx, sz = spacing
    x_span = (-0.5 * sx, (width - 0.5) * sx)
    y_span = ((height - 0.5) * sy, -0.5 * sy)
    z_span = ((depth - 0.5) * sz, -0.5 * sz)
    return {
        "xy": (*x_span, *y_span),
        "xz": (*x_span, *z_span),
        "yz": (z_span[1], z_span[0], *y_span),
    }


def voxel_at(plane: str, u: float, v: float, index_yxz: Sequence[int], spacing: Spacing) -> tuple[int, int, int]:
    """The voxel under the point (u, v) (micrometres, horizontal and vertical) of a ``plane`` drawn through
    ``index_yxz``; the coordinate the plane does not show is kept from ``index_yxz``."""
    y, x, z = index_yxz
    sy, sx, sz = spacing
    if plane == "xy":
        return (round(v / sy), round(u / sx), z)
    if plane == "xz":
        return (y, round(u / sx), round(v / sz))
    if plane == "yz":
        return (round(v / sy), x, round(u / sz))
    raise ValueError(f"unknown plane {plane!r}; choose from {', '.join(PLANES)}")


def point_at(plane: str, u: float, v: float, index_yxz: Sequence[int], spacing: Spacing) -> tuple[float, float, float]:
    """Like :func:`voxel_at`, unrounded: the (y, x, z) voxel coordinates of the point (u, v) of ``plane``."""
    y, x, z = (float(i) for i in index_yxz)
    sy, sx, sz = spacing
    if plane == "xy":
        return (v / sy, u / sx, z)
    if plane == "xz":
        return (y, u / sx, v / sz)
    if plane == "yz":
        return (v / sy, x, u / sz)
    raise ValueError(f"unknown plane {plane!r}; choose from {', '.join(PLANES)}")


Rect = tuple[float, float, float, float]


def slice_layout(
    shape: Sequence[int], spacing: Spacing, size_px: tuple[float, float], *, gap: float = 4.0, margin: float = 2.0
) -> dict[str, Rect]:
    """Where the XY, XZ and YZ views go in a ``(width, height)`` pixel area: ``(left, bottom, width, height)`` in
    pixels from the bottom-left, every view at its true aspect ratio and wholly inside the area.

    Two arrangements are weighed. The classic one puts YZ right of XY and XZ under it, all at one scale so the
    crosshairs line up. When the volume is shallow (a thin XZ strip) XZ may instead span the full width under XY and
    YZ, at a larger scale of its own; that one is chosen when it makes XZ, where axial elongation shows, at least
    15 % larger while XY keeps at least 85 % of its size.
    """
    height, width, depth = shape
    sy, sx, sz = spacing
    w, h, d = width * sx, height * sy, depth * sz  # extents in micrometres
    area_w, area_h = max(size_px[0] - 2 * margin, 1.0), max(size_px[1] - 2 * margin, 1.0)
    classic = min((area_w - gap) / (w + d), (area_h - gap) / (h + d))
    wide_xz = area_w / w
    top = min((area_w - gap) / (w + d), (area_h - gap - wide_xz * d) / h)
    if wide_xz >= 1.15 * classic and top >= 0.85 * classic:
        scale, xz_scale, block_w = top, wide_xz, area_w
    else:
        scale, xz_scale, block_w = max(classic, 1e-6), max(classic, 1e-6), max(classic, 1e-6) * (w + d) + gap
    left = margin + max(area_w - block_w, 0.0) / 2
    top_edge = margin + area_h
    xy = (left, top_edge - scale * h, scale * w, scale * h)
    yz = (left + scale * w + gap, xy[1], scale * d, scale * h)
    xz = (left, xy[1] - gap - xz_scale * d, xz_scale * w, xz_scale * d)
    return {"xy": xy, "xz": xz, "yz": yz}
