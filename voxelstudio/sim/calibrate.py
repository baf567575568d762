"""Fit the simulator's optics to a measured (averaged) bead by least squares (``scipy.optimize.least_squares``).

The model of a bead image is the Gibson-Lanni PSF (:mod:`voxelstudio.sim.psf`) at a sub-voxel position, blurred by
the simulator's isotropic Gaussian bead blob (``bead_sigma_vox``), times an amplitude plus a constant; amplitude and
constant are solved linearly inside every residual evaluation (variable projection). Free parameters are the NA,
emission wavelength and z step unless given, the sample index ``ns`` and bead depth (the index-mismatch aberration),
the blob sigma and the bead's sub-voxel shift. A coarse grid of starts (depth, ns, NA) picks where the local fit
begins. Standard errors come from the Jacobian at the solution scaled by the residual variance.
:func:`fit_optics_either_way` also tries the stack's planes reversed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.optimize import least_squares
from scipy.special import roots_legendre

from voxelstudio.sim.beads import BLOB_TRUNCATE
from voxelstudio.sim.params import OpticsParams
from voxelstudio.sim.psf import focal_offset_um, pupil_phase, radial_psf

MAX_NOISE_RATIO = 3.0
"""A fit whose residual variance exceeds this multiple of the noise variance (read where the model is dark) has not
converged."""
DARK_FRACTION = 0.02
"""Voxels where the fitted bead is below this fraction of its peak measure the bead image's noise."""
_FIT_OVERSAMPLING = 2
"""Radial profile step in the fit: half the voxel size (the profile is smooth; the simulator's finer step costs 2x)."""
DIFF_STEP = 1e-3
"""Relative finite-difference step of the Jacobian: the PSF's focus is searched on a 1 nm grid, so smaller steps
see its jumps instead of the slope."""
SHIFT_LIMIT_VOX = (3.0, 3.0, 8.0)
"""Largest bead shift (y, x, z) from the box centre; z also absorbs the brightest point's distance from the focus
the model is centred on."""
_FOCUS_NODES = 256
REVERSAL_GAIN = 0.1
"""Share of the residual sum of squares a fit with the planes reversed must save to be taken."""
SIGMA_RANGE = (0.5, 2.0)
_OPTICS_FIELDS = ("na", "wavelength_um", "ns", "depth_um", "z_step_um")


@dataclass(frozen=True)
class OpticsFit:
    """Fitted optics, bead sigma, their standard errors and how well the model explains the bead."""

    optics: OpticsParams
    bead_sigma_vox: float
    errors: dict[str, float]  # standard error of every fitted parameter
    amplitude: float  # peak of a voxel-centred bead of the fitted model, in the bead image's units
    relative_residual: float  # ||bead − model|| / ||bead − mean||
    noise_ratio: float  # residual variance / noise variance of the dark voxels (about 1 for a perfect model)
    converged: bool
    model: np.ndarray  # the fitted model at the bead's position, same shape as the bead

    @property
    def fitted(self) -> tuple[str, ...]:
        return tuple(self.errors)


def least_squares_focus_um(optics: OpticsParams) -> float:
    """Focus (µm) that best cancels the aberration across the pupil: a smooth stand-in for the brightest point's
    position (``psf.focal_offset_um`` searches on a grid, which the fit's finite differences would see as jumps)."""
    nodes, weights = roots_legendre(_FOCUS_NODES)
    rho_max = optics.effective_na / optics.na
    rho = 0.5 * rho_max * (nodes + 1.0)
    w = weights * rho / np.sum(weights * rho)
    fixed = pupil_phase(optics, rho, np.zeros(1))[0]
    defocus = pupil_phase(optics, rho, np.ones(1))[0] - fixed
    fixed_c, defocus_c = fixed - w @ fixed, defocus - w @ defocus
    return float(-(w @ (fixed_c * defocus_c)) / (w @ (defocus_c * defocus_c)))


def bead_model(
    optics: OpticsParams, sigma_vox: float, shape: tuple[int, int, int], shift_vox: tuple[float, float, float]
) -> np.ndarray:
    """Unnormalised image of a bead ``shift_vox`` voxels from the centre of a ``shape`` box on the optics' grid."""
    pad = math.ceil(BLOB_TRUNCATE * sigma_vox)
    dy, dx, dz = optics.voxel_size_um
    axes = [(np.arange(n + 2 * pad) - (n // 2 + pad) - s) for n, s in zip(shape, shift_vox, strict=True)]
    radius = np.hypot(axes[0][:, None] * dy, axes[1][None, :] * dx)
    step = min(dy, dx) / _FIT_OVERSAMPLING
    r_grid = np.arange(0.0, radius.max() + 2 * step, step)
    z = least_squares_focus_um(optics) + optics.z_direction * axes[2] * dz
    profile = radial_psf(optics, r_grid, z)
    position = radius.ravel() / step
    left = np.minimum(position.astype(np.intp), r_grid.size - 2)
    frac = position - left
    planes = profile[:, left] * (1.0 - frac) + profile[:, left + 1] * frac
    psf = planes.T.reshape(radius.shape[0], radius.shape[1], -1)
    blurred = gaussian_filter(psf, sigma_vox, mode="constant", truncate=BLOB_TRUNCATE)
    return blurred[pad:-pad, pad:-pad, pad:-pad] if pad else blurred


def _linear_fit(bead: np.ndarray, model: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Residual, amplitude and constant of the least-squares ``bead ≈ amplitude · model + constant``."""
    design = np.column_stack([model.ravel(), np.ones(model.size)])
    (amplitude, constant), *_ = np.linalg.lstsq(design, bead.ravel(), rcond=None)
    return bead.ravel() - design @ (amplitude, constant), float(amplitude), float(constant)


class _Problem:
    """Maps a parameter vector to optics, sigma and shift; evaluates residuals."""

    def __init__(self, bead: np.ndarray, base: OpticsParams, free: tuple[str, ...]) -> None:
        self.bead, self.base, self.free = bead, base, free
        self.names = (*free, "bead_sigma_vox", "shift_y", "shift_x", "shift_z")
        ranges = OpticsParams.ranges()
        bounds = {name: ranges[name] for name in free}
        if "na" in bounds:
            bounds["na"] = (bounds["na"][0], min(bounds["na"][1], base.ni - 0.01))
        bounds["bead_sigma_vox"] = SIGMA_RANGE
        for axis, limit in zip("yxz", SHIFT_LIMIT_VOX, strict=True):
            bounds[f"shift_{axis}"] = (-limit, limit)
        self.lower = np.array([bounds[n][0] for n in self.names])
        self.upper = np.array([bounds[n][1] for n in self.names])
        self.scale = float(np.linalg.norm(bead - bead.mean())) or 1.0

    def unpack(self, theta: np.ndarray) -> tuple[OpticsParams, float, tuple[float, float, float]]:
        values = dict(zip(self.names, (float(v) for v in theta), strict=True))
        optics = dataclasses.replace(self.base, **{n: values[n] for n in self.free})
        shift = (values["shift_y"], values["shift_x"], values["shift_z"])
        return optics, values["bead_sigma_vox"], shift

    def model(self, theta: np.ndarray) -> np.ndarray:
        optics, sigma, shift = self.unpack(theta)
        return bead_model(optics, sigma, self.bead.shape, shift)  # type: ignore[arg-type]

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        return _linear_fit(self.bead, self.model(np.clip(theta, self.lower, self.upper)))[0] / self.scale


def _starts(problem: _Problem, peak: np.ndarray) -> list[np.ndarray]:
    """Grid of starting points, each with the shift that puts its model's brightest voxel on the bead's."""
    grid: dict[str, tuple[float, ...]] = {"na": (1.0, 1.25, 1.45), "depth_um": (1.0, 8.0), "ns": (1.33, 1.45)}
    grid.update(wavelength_um=(0.52,), z_step_um=(0.1, 0.2))
    options = [grid.get(n, (getattr(problem.base, n),)) for n in problem.free]
    centre = np.array(problem.bead.shape) // 2
    starts = []
    for combo in itertools.product(*options):
        theta = np.clip(np.array([*combo, 1.0, 0.0, 0.0, 0.0]), problem.lower, problem.upper)
        model = problem.model(theta)
        model_peak = np.array(np.unravel_index(int(np.argmax(model)), model.shape)) - centre
        theta[-3:] = peak - model_peak
        starts.append(theta)
    # deep in a mismatched sample the brightest point lies many planes from the least-squares focus the model is
    # centred on: let the z shift reach that of every start and of any optics within the bounds (and as far again
    # as SHIFT_LIMIT_VOX allows around it)
    farthest = max(max(abs(float(theta[-1])) for theta in starts), _farthest_focus_offset_vox(problem))
    reach = max(farthest + SHIFT_LIMIT_VOX[2], float(problem.upper[-1]))
    problem.lower[-1], problem.upper[-1] = -reach, reach
    return [np.clip(theta, problem.lower, problem.upper) for theta in starts]


def _farthest_focus_offset_vox(problem: _Problem) -> float:
    """The farthest (in planes) the brightest point lies from the least-squares focus at the corners of the free
    optics' bounds, where it is largest (it grows with depth, index mismatch and NA, and with finer z steps)."""
    optics_fields = [n for n in problem.free if n in _OPTICS_FIELDS]
    corners = itertools.product(*[(problem.lower[i], problem.upper[i]) for i in range(len(optics_fields))])
    farthest = 0.0
    for corner in corners:
        optics = dataclasses.replace(problem.base, **{n: float(v) for n, v in zip(optics_fields, corner, strict=True)})
        offset_um = focal_offset_um(optics) - least_squares_focus_um(optics)
        farthest = max(farthest, abs(offset_um) / optics.z_step_um)
    return farthest


def fit_optics(bead: np.ndarray, base: OpticsParams, free: tuple[str, ...], *, max_starts: int = 2) -> OpticsFit:
    """Fit the ``free`` optics fields (of ``na, wavelength_um, ns, depth_um, z_step_um``), the bead sigma and the
    bead's shift to the background-free ``bead`` image sampled on ``base``'s voxel grid (see module docstring)."""
    unknown = sorted(set(free) - set(_OPTICS_FIELDS))
    if unknown:
        raise ValueError(f"cannot fit optics field(s) {', '.join(unknown)}")
    bead = np.asarray(bead, dtype=np.float64)
    problem = _Problem(bead, base, tuple(free))
    peak = np.array(np.unravel_index(int(np.argmax(bead)), bead.shape)) - np.array(bead.shape) // 2
    starts = _starts(problem, peak.astype(float))
    costs = np.array([float(np.sum(problem.residuals(s) ** 2)) for s in starts])
    # the best start for each starting NA (the fit's valleys run along ns and depth; NA separates its minima)
    groups = np.array([s[0] for s in starts]) if "na" in problem.free else np.zeros(len(starts))
    chosen = [int(np.flatnonzero(groups == g)[np.argmin(costs[groups == g])]) for g in np.unique(groups)]
    chosen = sorted(chosen, key=lambda i: costs[i])[:max_starts] if len(chosen) > 1 else list(np.argsort(costs)[:2])
    best = None
    for index in chosen:
        fit = least_squares(
            problem.residuals,
            starts[index],
            bounds=(problem.lower, problem.upper),
            x_scale="jac",
            diff_step=DIFF_STEP,
            ftol=1e-5,
            xtol=1e-5,
        )
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    theta = best.x
    residual = problem.residuals(theta)
    dof = max(residual.size - len(theta) - 2, 1)
    errors = standard_errors(best.jac, float(residual @ residual) / dof)
    optics, sigma, shift = problem.unpack(theta)
    model = problem.model(theta)
    _, amplitude, constant = _linear_fit(bead, model)
    # the same bead on whole-voxel shifts: voxel-centred, its brightest point in the box however far it lies from
    # the least-squares focus
    centred = bead_model(optics, sigma, bead.shape, tuple(float(round(s)) for s in shift))  # type: ignore[arg-type]
    relative = float(np.linalg.norm(residual))
    dark = (model - model.min()) < DARK_FRACTION * (model.max() - model.min())
    noise = float(np.var(bead[dark])) if np.count_nonzero(dark) > 10 else 0.0
    raw_residual = residual * problem.scale
    ratio = float(np.mean(raw_residual**2)) / noise if noise > 0 else math.inf
    names = [n for n in problem.names if not n.startswith("shift_")]
    return OpticsFit(
        optics=optics,
        bead_sigma_vox=sigma,
        errors={n: float(e) for n, e in zip(problem.names, errors, strict=True) if n in names},
        amplitude=amplitude * float(centred.max()),
        relative_residual=relative,
        noise_ratio=ratio,
        converged=bool(best.status > 0) and ratio <= MAX_NOISE_RATIO,
        model=amplitude * model + constant,
    )


def fit_optics_either_way(bead: np.ndarray, base: OpticsParams, free: tuple[str, ...]) -> OpticsFit:
    """:func:`fit_optics` on the stack's planes as they run and reversed (``OpticsParams.z_reversed``): an aberrated
    PSF's longer tail shows which way the microscope stepped. The reversed fit wins only when it leaves clearly less
    residual (:data:`REVERSAL_GAIN`): a symmetric PSF fits both ways alike."""
    forward = fit_optics(bead, dataclasses.replace(base, z_reversed=False), free)
    backward = fit_optics(bead, dataclasses.replace(base, z_reversed=True), free)
    return backward if backward.relative_residual**2 < (1.0 - REVERSAL_GAIN) * forward.relative_residual**2 else forward


def standard_errors(jacobian: np.ndarray, residual_variance: float, rcond: float = 1e-7) -> np.ndarray:
    """Each parameter's standard error from the fit's Jacobian; ``inf`` for a parameter the data do not determine
    (one with a share in a direction the model does not change along, e.g. an NA above the sample's index, where
    the pupil is cut at that index: a pseudo-inverse would report it as exact)."""
    try:
        _, singular, vt = np.linalg.svd(jacobian, full_matrices=False)
    except np.linalg.LinAlgError:
        return np.full(jacobian.shape[1], np.inf)
    flat = singular <= rcond * (singular.max() if singular.size else 0.0)
    shares = vt**2  # row k: how much of direction k each parameter has
    undetermined = (shares[flat] > 1e-6).any(axis=0) if flat.any() else np.zeros(jacobian.shape[1], dtype=bool)
    determined = ~flat
    variances = (shares[determined] / singular[determined, None] ** 2).sum(axis=0) * residual_variance
    return np.where(undetermined, np.inf, np.sqrt(variances))


def optics_report(fit: OpticsFit) -> Mapping[str, tuple[float, float]]:
    """Every fitted value with its standard error, by name."""
    values = {**fit.optics.to_dict(), "bead_sigma_vox": fit.bead_sigma_vox}
    return {name: (values[name], error) for name, error in fit.errors.items()}
