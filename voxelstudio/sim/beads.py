"""The target: beads at random voxels, each a compact isotropic Gaussian blob (the original MATLAB generator)."""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d

BLOB_TRUNCATE = 4.0
"""Blob kernels stop at this many sigmas, so the target is exactly 0 away from beads."""


def bead_points(
    shape: tuple[int, int, int], density: float, brightness_spread: float, rng: np.random.Generator
) -> np.ndarray:
    """Point sources: each voxel holds a bead with probability ``density``; brightness uniform in [1 - spread, 1]."""
    points = np.zeros(shape, dtype=np.float32)
    hits = rng.random(shape) < density
    count = int(hits.sum())
    points[hits] = 1.0 - brightness_spread * rng.random(count, dtype=np.float32)
    return points


def blob_peak(sigma_vox: float) -> float:
    """Centre value of a unit point smoothed by the discrete 3-D Gaussian used in :func:`blob_field`."""
    radius = math.ceil(BLOB_TRUNCATE * sigma_vox)
    delta = np.zeros(2 * radius + 1)
    delta[radius] = 1.0
    centre = gaussian_filter1d(delta, sigma_vox, mode="constant", truncate=BLOB_TRUNCATE)[radius]
    return float(centre**3)


def blob_field(points: np.ndarray, sigma_vox: float) -> np.ndarray:
    """Smooth points into isotropic blobs whose peak equals the point's brightness; overlapping blobs are clipped
    to 1 where they sum above it (:func:`clip_overlaps`)."""
    return clip_overlaps(unit_blobs(points, sigma_vox))


def unit_blobs(points: np.ndarray, sigma_vox: float) -> np.ndarray:
    """Points smoothed into isotropic blobs whose peak equals the point's brightness (overlaps may exceed 1)."""
    field = gaussian_filter(points, sigma_vox, mode="constant", truncate=BLOB_TRUNCATE)
    field /= np.float32(blob_peak(sigma_vox))
    return field


def clip_overlaps(field: np.ndarray) -> np.ndarray:
    """``field`` clipped to [0, 1] in place: only where overlapping blobs sum above 1 (dividing the whole field by
    its peak instead dimmed every bead of a volume for one chance overlap, to 0.6-0.8 at high densities)."""
    return np.clip(field, 0.0, 1.0, out=field)


def blob_kernel(sigma_vox: float) -> np.ndarray:
    """One blob of peak 1 centred in a small odd-sized cube (for normalising the raw bead peak)."""
    radius = math.ceil(BLOB_TRUNCATE * sigma_vox)
    point = np.zeros((2 * radius + 1,) * 3, dtype=np.float32)
    point[radius, radius, radius] = 1.0
    return blob_field(point, sigma_vox)
