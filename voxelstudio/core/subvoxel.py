"""Sub-voxel translation of a volume with a short windowed-sinc (Lanczos) filter along each axis.

The filter is local (:data:`HALO` voxels each side), so a block translated with that many extra voxels read around
it equals the same voxels of the whole volume translated; at the volume's faces the data are mirrored. A Lanczos
filter passes nearly every spatial frequency unchanged, so noise keeps its spectrum (linear interpolation would
smooth it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

LOBES = 4
"""Lanczos window size a: the kernel has 2a non-zero taps."""
HALO = LOBES
"""Voxels beyond a block on each side that translating it reads."""
MIN_SHIFT = 1e-3
"""Shifts smaller than this (voxels) leave an axis as it is."""


def lanczos_kernel(shift: float) -> np.ndarray:
    """Weights ``w`` (length 2 * :data:`HALO` + 1) with ``sum_k w[k] f(i + k - HALO) = f(i + shift)`` for a smooth
    ``f``: ``shift`` in (-1, 1) voxels."""
    if not -1.0 < shift < 1.0:
        raise ValueError(f"a sub-voxel shift must lie in (-1, 1), got {shift}")
    offsets = np.arange(-HALO, HALO + 1, dtype=np.float64)
    x = offsets - shift
    weights = np.where(np.abs(x) < LOBES, np.sinc(x) * np.sinc(x / LOBES), 0.0)
    return weights / weights.sum()


def reach(by: Sequence[float]) -> tuple[int, ...]:
    """Voxels beyond a block, per axis, that :func:`translate` by ``by`` reads (0 where an axis does not move)."""
    return tuple(HALO + int(np.ceil(abs(b))) if abs(b) >= MIN_SHIFT else 0 for b in by)


def translate(array: np.ndarray, by: Sequence[float]) -> np.ndarray:
    """``array`` (3-D) moved by ``by`` voxels (y, x, z), float32: out(p) = array(p - by). Whole voxels move by
    indexing, the rest with :func:`lanczos_kernel`; the faces are mirrored (half-sample symmetric)."""
    out = np.asarray(array, dtype=np.float32)
    if len(by) != out.ndim:
        raise ValueError(f"need one shift per axis ({out.ndim}), got {list(by)}")
    for axis, amount in enumerate(by):
        whole = int(np.round(amount))
        fraction = float(amount) - whole
        if abs(fraction) >= MIN_SHIFT:
            out = ndi.correlate1d(out, lanczos_kernel(-fraction), axis=axis, mode="reflect")
        if whole:
            out = _shift_whole(out, whole, axis)
    return out


def _shift_whole(array: np.ndarray, steps: int, axis: int) -> np.ndarray:
    """out(i) = array(i - steps) along ``axis``, mirrored at the faces."""
    n = array.shape[axis]
    index = np.arange(n) - steps
    index = np.where(index < 0, -index - 1, index)
    index = np.where(index >= n, 2 * n - index - 1, index)
    return np.take(array, np.clip(index, 0, n - 1), axis=axis)
