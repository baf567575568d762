"""Ambient light: a smooth, spatially varying background and the out-of-focus haze transfer function."""

from __future__ import annotations

import numpy as np

BACKGROUND_TERMS = 4
"""Number of random separable cosine products that make up the background variation."""
HAZE_AXIAL_FACTOR = 2.0
"""Axial sigma of the haze blur relative to its lateral sigma (out-of-focus light spreads further along z)."""


def smooth_background(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    *,
    level: float,
    variation: float,
    scale_um: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``level · (1 + variation · f)`` where f is a random smooth field with mean 0 and max |f| = 1.

    f is a sum of products of 1-D cosines with random periods in [scale, 3·scale] µm, phases and amplitudes, so it
    varies slowly and costs a few broadcasts.
    """
    field = np.zeros(shape, dtype=np.float32)
    for _ in range(BACKGROUND_TERMS):
        amplitude = np.float32(rng.standard_normal())
        waves = []
        for n, step in zip(shape, spacing, strict=True):
            period = rng.uniform(scale_um, 3.0 * scale_um)
            phase = rng.uniform(0.0, 2.0 * np.pi)
            waves.append(np.cos(2.0 * np.pi * np.arange(n) * step / period + phase).astype(np.float32))
        field += amplitude * waves[0][:, None, None] * waves[1][None, :, None] * waves[2][None, None, :]
    field -= field.mean()
    extent = float(np.abs(field).max())
    if extent > 0:
        field /= np.float32(extent)
    return np.float32(level) * (np.float32(1.0) + np.float32(variation) * field)


def haze_transfer(shape: tuple[int, int, int], spacing: tuple[float, float, float], sigma_um: float) -> np.ndarray:
    """rfftn-domain transfer function of a unit-sum periodic Gaussian blur (lateral sigma ``sigma_um``, axial
    ``HAZE_AXIAL_FACTOR`` times that) on a grid of ``shape``."""
    sigmas = (sigma_um / spacing[0], sigma_um / spacing[1], HAZE_AXIAL_FACTOR * sigma_um / spacing[2])
    freqs = (
        np.fft.fftfreq(shape[0]),
        np.fft.fftfreq(shape[1]),
        np.fft.rfftfreq(shape[2]),
    )
    gy, gx, gz = (np.exp(-2.0 * (np.pi * s * f) ** 2).astype(np.float32) for s, f in zip(sigmas, freqs, strict=True))
    return gy[:, None, None] * gx[None, :, None] * gz[None, None, :]
