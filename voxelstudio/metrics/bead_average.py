"""A measured bead: isolated, unsaturated beads away from the borders, registered with sub-voxel precision, averaged.

Huygens' PSF distiller and napari-psf-analysis do the same. Steps:

1. beads are found by :func:`~voxelstudio.metrics.beads.find_beads`; a bead is kept when its crop box (``half``
   voxels each side) lies inside the volume, no other bead lies within 1.25 box half-widths (its light would
   overlap), and it is not saturated (no plateau of voxels at the volume's maximum in its core); in a sample too
   dense for that to leave enough beads, no other bead within 1 half-width (none inside the box) will do;
2. each crop minus the smooth background is registered to the running mean by phase correlation upsampled to
   ``1/upsample`` voxel (``skimage.registration.phase_cross_correlation``) and moved there by a Fourier shift
   (``scipy.ndimage.fourier_shift``: exact for band-limited beads); two passes;
3. the registered crops are averaged; each bead's brightness is its least-squares amplitude against that average.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import fourier_shift
from skimage.registration import phase_cross_correlation

from voxelstudio.metrics.beads import find_beads, smoothed_and_background

ISOLATION = (1.25, 1.0)
"""No other bead may lie within this many crop half-widths (per axis) of a kept bead: the first that leaves enough
beads. The second lets a neighbour's light into the box's rim; without it a scan of dense beads at a fine pixel, whose
long axial box leaves only its middle planes, kept none (NA 1.25, 65 nm pixels, 0.1 µm steps, 32 planes: 0 of 258
beads, 11 with it)."""
SATURATION_MIN_VOXELS = 2
"""A bead is saturated when at least this many voxels of its 3x3x3 core reach the volume's maximum (a plateau)."""


@dataclass(frozen=True)
class BeadAverage:
    """The averaged bead (background 0, float64, centred in a box of ``2·half + 1``) and what went into it."""

    image: np.ndarray
    centres: np.ndarray  # (N, 3) float sub-voxel centres of the beads used, in volume voxel coordinates
    amplitudes: np.ndarray  # (N,) each bead's brightness relative to the average
    n_found: int
    n_saturated: int


def saturation_level(volume: np.ndarray) -> float:
    """The volume's maximum: the level a clipping camera leaves as a plateau (see :func:`select_beads`)."""
    return float(np.max(volume))


def select_beads(
    volume: np.ndarray,
    peaks: np.ndarray,
    half: Sequence[int],
    saturated_at: float | None,
    isolation: float = ISOLATION[0],
) -> tuple[np.ndarray, int]:
    """(kept peaks, number rejected as saturated): inside the borders, no other bead within ``isolation`` box
    half-widths, unsaturated (module docstring)."""
    shape = np.asarray(volume.shape)
    half_arr = np.asarray(half)
    inside = np.all((peaks >= half_arr) & (peaks < shape - half_arr), axis=1)
    scaled = peaks / (isolation * half_arr + 1.0)
    isolated = np.ones(len(peaks), dtype=bool)
    for i in range(len(peaks)):
        others = np.delete(scaled, i, axis=0)
        isolated[i] = not np.any(np.all(np.abs(others - scaled[i]) < 1.0, axis=1))
    saturated = np.zeros(len(peaks), dtype=bool)
    if saturated_at is not None:
        for i, (y, x, z) in enumerate(peaks):
            core = volume[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2, max(z - 1, 0) : z + 2]
            saturated[i] = int(np.count_nonzero(core >= saturated_at)) >= SATURATION_MIN_VOXELS
    keep = inside & isolated & ~saturated
    return peaks[keep], int(np.count_nonzero(inside & isolated & saturated))


def _crop(volume: np.ndarray, centre: np.ndarray, half: Sequence[int]) -> np.ndarray:
    return volume[tuple(slice(int(c) - h, int(c) + h + 1) for c, h in zip(centre, half, strict=True))]


def _shifted(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    return np.fft.ifftn(fourier_shift(np.fft.fftn(image), shift)).real


def register_and_average(
    crops: Sequence[np.ndarray], *, upsample: int = 50, passes: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(average, shifts (N, 3) that moved each crop onto it, amplitudes) of background-free bead crops."""
    stack = np.asarray(crops, dtype=np.float64)
    reference = stack.mean(axis=0)
    shifts = np.zeros((len(stack), 3))
    for _ in range(passes):
        for i, crop in enumerate(stack):
            shifts[i], _, _ = phase_cross_correlation(reference, crop, upsample_factor=upsample, normalization=None)
        reference = np.mean([_shifted(c, s) for c, s in zip(stack, shifts, strict=True)], axis=0)
    aligned = np.array([_shifted(c, s) for c, s in zip(stack, shifts, strict=True)])
    average = aligned.mean(axis=0)
    norm = float(np.sum(average * average))
    amplitudes = np.array([float(np.sum(a * average)) / norm for a in aligned]) if norm > 0 else np.ones(len(stack))
    return average, shifts, amplitudes


def average_beads(
    volumes: Sequence[np.ndarray], half: Sequence[int], *, min_beads: int = 5, **find_options: float
) -> BeadAverage:
    """Average the usable beads of one or more volumes (same microscope, same voxel size) into one bead image.

    Raises ValueError naming the problem when there are no beads, only saturated ones, or fewer than ``min_beads``.
    """
    found = []
    for volume in volumes:
        data = np.asarray(volume, dtype=np.float32)
        if data.ndim != 3:
            raise ValueError(f"bead averaging needs 3-D volumes, got shape {data.shape}")
        found.append((data, find_beads(data, **find_options), saturation_level(data)))  # type: ignore[arg-type]
    n_found = sum(len(peaks) for _, peaks, _ in found)
    for isolation in ISOLATION:
        chosen = [(data, *select_beads(data, peaks, half, level, isolation)) for data, peaks, level in found]
        n_saturated = sum(saturated for _, _, saturated in chosen)
        if sum(len(kept) for _, kept, _ in chosen) >= min_beads:
            break
    crops, centres = [], []
    for data, kept, _ in chosen:
        if len(kept):
            _, background = smoothed_and_background(data)
            crops += [_crop(data - background, p, half) for p in kept]
            centres += [p.astype(np.float64) for p in kept]
    if n_found == 0:
        raise ValueError("no beads found in the volume")
    if not crops and n_saturated:
        raise ValueError(f"all {n_saturated} isolated beads are saturated; lower the exposure or the laser power")
    if len(crops) < min_beads:
        raise ValueError(
            f"only {len(crops)} usable beads (isolated, unsaturated, away from the borders) of {n_found} found; "
            f"need at least {min_beads}"
        )
    average, shifts, amplitudes = register_and_average(crops)
    return BeadAverage(average, np.asarray(centres) - shifts, amplitudes, n_found, n_saturated)
