"""Gibson-Lanni scalar widefield point spread function (PSF), computed with numpy/scipy.

The intensity at radius ``r`` from the optical axis and focus offset ``z`` is

    PSF(r, z) = | ∫_0^ρmax J0(k NA r ρ) exp(i k OPD(ρ, z)) ρ dρ |²,

with ``k = 2π/λ`` and the optical path difference (Gibson & Lanni 1991) of a point source at ``depth`` below the
coverslip, seen through a coverslip (index ng, thickness tg) that may differ from the one the objective expects
(ng0 = 1.515, tg0 = 170 µm) and a sample of index ns that may differ from the immersion medium ni:

    OPD = depth √(ns² − (NAρ)²) + z √(ni² − (NAρ)²) + tg √(ng² − (NAρ)²) − tg0 √(ng0² − (NAρ)²)

(the working-distance terms cancel because the immersion medium is the objective's design medium).

``z`` is the focal-scan coordinate: the coverslip position relative to the nominal focus (negative is closer to the
objective), as in microscPSF-py's ``gLZRFocalScan``. Rays beyond the smallest refractive index are evanescent and
left out (ρmax = min(NA, ni, ns, ng) / NA). The integral uses Gauss-Legendre quadrature over ρ, once on a radial grid
per plane, and the radial profile is interpolated onto the (H, W) grid.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import j0, roots_legendre

from voxelstudio.sim.params import COVERSLIP_DESIGN_INDEX, COVERSLIP_DESIGN_UM, OpticsParams, validate_shape

RHO_NODES = 1024
"""Gauss-Legendre nodes over the pupil radius: enough for ~100 rad of pupil phase (defocus of many µm)."""

RADIAL_OVERSAMPLING = 4
"""Radial grid step is the smaller lateral voxel size divided by this."""

Spacing = tuple[float, float, float]


@lru_cache(maxsize=1)
def _legendre(count: int) -> tuple[np.ndarray, np.ndarray]:
    return roots_legendre(count)  # type: ignore[no-any-return]


def _pupil_nodes(optics: OpticsParams) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes ρ in [0, ρmax] and weights (including the ρ of ρ dρ)."""
    rho_max = optics.effective_na / optics.na
    nodes, weights = _legendre(RHO_NODES)
    rho = 0.5 * rho_max * (nodes + 1.0)
    return rho, 0.5 * rho_max * weights * rho


def _sqrt_index(n: float, na_rho: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(n * n - na_rho * na_rho, 0.0))


def pupil_phase(optics: OpticsParams, rho: np.ndarray, z_um: np.ndarray) -> np.ndarray:
    """Phase k·OPD (radians), shape (len(z_um), len(rho))."""
    k = 2.0 * np.pi / optics.wavelength_um
    na_rho = optics.na * np.asarray(rho, dtype=np.float64)
    z = np.asarray(z_um, dtype=np.float64).reshape(-1, 1)
    opd_fixed = (
        optics.depth_um * _sqrt_index(optics.ns, na_rho)
        + optics.tg_um * _sqrt_index(optics.ng, na_rho)
        - COVERSLIP_DESIGN_UM * _sqrt_index(COVERSLIP_DESIGN_INDEX, na_rho)
    )
    return k * (opd_fixed + z * _sqrt_index(optics.ni, na_rho))


def radial_psf(optics: OpticsParams, r_um: np.ndarray, z_um: np.ndarray) -> np.ndarray:
    """Unnormalised Gibson-Lanni intensity on a (z, r) grid, shape (len(z_um), len(r_um)), float64."""
    rho, weights = _pupil_nodes(optics)
    k = 2.0 * np.pi / optics.wavelength_um
    r = np.asarray(r_um, dtype=np.float64).reshape(-1, 1)
    bessel = j0(k * optics.na * r * rho) * weights  # (n_r, n_rho)
    field = np.exp(1j * pupil_phase(optics, rho, z_um)) @ bessel.T  # (n_z, n_r)
    return field.real**2 + field.imag**2


def _least_squares_focus(optics: OpticsParams) -> float:
    """Focus z that best cancels the fixed optical path difference across the pupil (minimum RMS wavefront)."""
    rho, weights = _pupil_nodes(optics)
    fixed = pupil_phase(optics, rho, np.zeros(1))[0]
    defocus = pupil_phase(optics, rho, np.ones(1))[0] - fixed  # phase per µm of focus
    w = weights / weights.sum()
    fixed_c, defocus_c = fixed - w @ fixed, defocus - w @ defocus
    return float(-(w @ (fixed_c * defocus_c)) / (w @ (defocus_c * defocus_c)))


@lru_cache(maxsize=256)
def focal_offset_um(optics: OpticsParams) -> float:
    """Focal-scan position z (µm) of the brightest on-axis point: 0 for matched indices and coverslip; about
    −depth·ni/ns (more at high NA) for beads at ``depth`` in a sample of another index."""
    best, half_width = _least_squares_focus(optics), 3.0 + 0.25 * optics.depth_um
    for step in (0.04, 0.001):
        z = best + np.arange(-half_width, half_width + step / 2, step)
        best = float(z[int(np.argmax(radial_psf(optics, np.zeros(1), z)[:, 0]))])
        half_width = 0.05
    return best


def make_psf(optics: OpticsParams, shape: tuple[int, int, int], spacing: Spacing | None = None) -> np.ndarray:
    """The 3-D PSF as float32 (H, W, Z), brightest voxel at index (H//2, W//2, Z//2), summing to 1.

    ``spacing`` is the voxel size (y, x, z) in µm; by default ``optics.voxel_size_um``. The returned array is
    read-only (it is cached); copy it before changing it.
    """
    spacing = optics.voxel_size_um if spacing is None else tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"PSF spacing must be three positive numbers (y, x, z) in µm, got {spacing!r}")
    return _make_psf(optics, validate_shape(shape, "PSF shape"), spacing)  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def _make_psf(optics: OpticsParams, shape: tuple[int, int, int], spacing: Spacing) -> np.ndarray:
    height, width, depth = shape
    dy, dx, dz = spacing
    y = (np.arange(height) - height // 2) * dy
    x = (np.arange(width) - width // 2) * dx
    radius = np.hypot(y[:, None], x[None, :])
    step = min(dy, dx) / RADIAL_OVERSAMPLING
    r_grid = np.arange(0.0, radius.max() + 2 * step, step)
    z = focal_offset_um(optics) + optics.z_direction * (np.arange(depth) - depth // 2) * dz
    profile = radial_psf(optics, r_grid, z)  # (Z, n_r)
    # Linear interpolation along r at every plane at once: the same neighbours and weights for all z.
    position = radius.ravel() / step
    left = np.minimum(position.astype(np.intp), r_grid.size - 2)
    frac = position - left
    planes = profile[:, left] * (1.0 - frac) + profile[:, left + 1] * frac  # (Z, H*W)
    psf = planes.T.reshape(height, width, depth)
    psf = (psf / psf.sum()).astype(np.float32)
    psf.flags.writeable = False
    return psf


AXIAL_FWHM_STEP_UM = 0.04
"""Focus step of the on-axis profile :func:`axial_fwhm_um` measures."""
AXIAL_FWHM_HALF_RANGE_UM = 8.0
"""The on-axis profile spans the brightest point ± this; a wider PSF reports this range's full width."""


@lru_cache(maxsize=256)
def axial_fwhm_um(optics: OpticsParams) -> float:
    """Full width at half maximum (µm) of the PSF's on-axis intensity around its brightest point, aberrations
    included: the "PSF length" that sets how far out-of-focus light reaches along z."""
    z = focal_offset_um(optics) + np.arange(
        -AXIAL_FWHM_HALF_RANGE_UM, AXIAL_FWHM_HALF_RANGE_UM + AXIAL_FWHM_STEP_UM / 2, AXIAL_FWHM_STEP_UM
    )
    profile = radial_psf(optics, np.zeros(1), z)[:, 0]
    peak = int(np.argmax(profile))
    above = profile >= profile[peak] / 2.0
    left = peak
    while left > 0 and above[left - 1]:
        left -= 1
    right = peak
    while right < profile.size - 1 and above[right + 1]:
        right += 1
    return float((right - left + 1) * AXIAL_FWHM_STEP_UM)
