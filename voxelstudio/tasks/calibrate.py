"""Calibrate the simulator on raw bead scans: camera noise, a measured bead, fitted optics, background and haze.

Steps (:func:`calibrate_volumes`): the camera's gain, offset and read noise from the background's mean-variance
relation (:mod:`voxelstudio.metrics.noise`, blocks pooled over all scans); the scans converted to photo-electrons;
isolated beads averaged into a measured bead (:mod:`voxelstudio.metrics.bead_average`); the simulator's optics fitted
to it (:mod:`voxelstudio.sim.calibrate`); photons and the brightness spread from the beads' amplitudes; the ambient
background, its variation and the haze from the smooth background (:mod:`voxelstudio.tasks.calibrate_ambient`).
The result is a :class:`~voxelstudio.sim.params.SimParams` in the simulator's units (gain 1: offset and read noise
in photo-electrons) plus a report.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume, is_constant
from voxelstudio.metrics.bead_average import BeadAverage, average_beads
from voxelstudio.metrics.fwhm import profile_fwhm
from voxelstudio.metrics.noise import CameraEstimate, DarkCamera, bead_mask, block_moments, fit_camera
from voxelstudio.sim.calibrate import OpticsFit, bead_model, fit_optics_either_way
from voxelstudio.sim.params import OpticsParams, SimParams
from voxelstudio.tasks.calibrate_ambient import AmbientEstimate, estimate_ambient

MIN_BEADS = 5
CROP_LATERAL_UM = 0.5
"""The measured bead's box reaches this far laterally beyond 2 voxels, µm."""
CROP_AXIAL_UM = 1.2
"""... and this far axially (at least 4 voxels)."""
Z_STEP_GUESS_UM = 0.2
"""Axial voxel size assumed for sizing the bead box when the z step is to be fitted."""
LONGER_BOX = 1.75
"""A bead that does not fall to half its peak inside the box along z is averaged again in a box this much longer."""
AXIAL_FWHM_TOLERANCE = 0.2
"""The fitted model's axial FWHM must be within this fraction of the measured bead's, or the fit missed the PSF."""
CHECK_TUBE = 1
"""The axial cross-check reads both beads along the 3x3 lines around the peak (one line through a noisy average
varies by tens of percent: 0.83-1.18 µm over five scans of one 40-photon microscope whose bead is 1.25 µm long)."""
REPORT_HALF_Z = 32
"""Half-length along z of the box the fitted model's reported FWHM is measured in (longer than any bead box)."""


@dataclass(frozen=True)
class Calibration:
    """Everything :func:`calibrate_volumes` found; ``params`` is what the simulator needs."""

    params: SimParams
    optics_fit: OpticsFit
    camera: CameraEstimate
    beads: BeadAverage
    ambient: AmbientEstimate
    fitted: dict[str, tuple[float, float]]  # name -> (value, standard error), simulator units
    fwhm_um: dict[str, dict[str, float | None]]  # "measured"/"model" -> lateral/axial
    axial_check_um: dict[str, float | None]  # "measured"/"model": the cross-check's widths (see tube_axial_fwhm_um)
    assumed: list[str] = field(default_factory=list)  # values not measured (defaults or given)
    clipped: list[str] = field(default_factory=list)  # values moved into the simulator's range
    scan_shape: tuple[int, int, int] = (0, 0, 0)  # the shallowest scan's shape

    @property
    def problems(self) -> list[str]:
        """Why the fitted optics cannot be trusted (empty when they can): the fit's own residual, a bead longer than
        its box, or a fitted PSF whose axial width differs from the measured bead's (both read alike in the box)."""
        fit, found = self.optics_fit, []
        if not fit.converged:
            found.append(f"the optics fit left a residual {fit.noise_ratio:.3g}x the noise variance")
        measured, model = self.axial_check_um["measured"], self.axial_check_um["model"]
        if measured is None:
            found.append("the averaged bead does not fall to half its peak along z inside its box (a strongly "
                         "aberrated PSF, or too few z slices): its axial width could not be checked")  # fmt: skip
        elif model is None or abs(model - measured) > AXIAL_FWHM_TOLERANCE * measured:
            width = "n/a" if model is None else f"{model:.2f}"
            found.append(f"the fitted PSF's axial FWHM ({width} µm) differs from the measured bead's "
                         f"({measured:.2f} µm) by more than {AXIAL_FWHM_TOLERANCE:.0%}")  # fmt: skip
        return found

    @property
    def converged(self) -> bool:
        return not self.problems


def resolve_spacing(volumes: Sequence[Volume], voxel_size: Sequence[float] | None) -> tuple[float, float, float | None]:
    """(y, x, z) in µm from ``voxel_size`` (two values: z unknown, to be fitted) or the files; ValueError when
    neither says or the files disagree."""
    if voxel_size is not None:
        values = tuple(float(v) for v in voxel_size)
        if len(values) not in (2, 3) or not all(math.isfinite(v) and v > 0 for v in values):
            given = ",".join(f"{v:g}" for v in values)
            raise ValueError(f"--voxel-size: expected positive numbers Y,X,Z (or Y,X) in µm, got {given}")
        if values[0] != values[1]:
            raise ValueError(f"--voxel-size: Y and X must be equal (square pixels), got {voxel_size!r}")
        return (values[0], values[1], values[2] if len(values) == 3 else None)
    known = {v.known_spacing for v in volumes}
    if None in known:
        unknown = next(v for v in volumes if v.known_spacing is None)
        raise ValueError(f"{unknown.label}: voxel size not in the file; give --voxel-size Y,X,Z in µm")
    if len(known) > 1:
        sizes = "; ".join(f"{v.label} {'x'.join(f'{s:g}' for s in v.spacing)} µm" for v in volumes)
        raise ValueError(
            f"the scans have different voxel sizes ({sizes}); calibrate scans of one microscope setting together"
        )
    y, x, z = known.pop()  # type: ignore[misc]
    if not math.isclose(y, x, rel_tol=1e-6):  # the optics model has one pixel size
        raise ValueError(f"the scans' pixels are not square (y {y:g} µm, x {x:g} µm); calibration needs square pixels")
    return (y, x, z)


def check_simulated_spacing(spacing: tuple[float, float, float | None], source: str) -> None:
    """ValueError, before any analysis, when the simulator cannot model the voxel size (from ``source``)."""
    ranges = OpticsParams.ranges()
    for what, value, name in (("pixel", spacing[0], "pixel_um"), ("z step", spacing[2], "z_step_um")):
        low, high = ranges[name]
        if value is not None and not low <= value <= high:
            raise ValueError(
                f"{source}: {what} {value:g} µm is outside what the simulator models ({low:g}-{high:g} µm), so it "
                "cannot be calibrated"
            )


GIVEN_OPTICS = {"wavelength_um": "--wavelength", "na": "--na", "ni": "--ni"}
"""The optics a user may fix instead of fitting, and the options that give them."""


def check_given_optics(**values: float | None) -> None:
    """ValueError naming the option when a given (not None) optical value is outside the simulator's range."""
    ranges = OpticsParams.ranges()
    for name, value in values.items():
        low, high = ranges[name]
        if value is not None and not low <= value <= high:
            option = GIVEN_OPTICS[name]
            raise ValueError(f"{option}: must be in [{low:g}, {high:g}] (the simulator's range), got {value:g}")


def bead_box(spacing: tuple[float, float, float | None], shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Half-size (y, x, z) in voxels of the measured bead's box, limited so beads can fit inside the scan."""
    dy, dx, dz = spacing
    hy = max(4, 2 + math.ceil(CROP_LATERAL_UM / dy))
    hx = max(4, 2 + math.ceil(CROP_LATERAL_UM / dx))
    hz = max(4, math.ceil(CROP_AXIAL_UM / (dz or Z_STEP_GUESS_UM)))
    limits = [(n - 3) // 2 for n in shape]
    return (min(hy, limits[0]), min(hx, limits[1]), min(hz, limits[2]))


def _central_fwhm(image: np.ndarray, peak: tuple[int, ...], spacing: Sequence[float]) -> dict[str, float | None]:
    y, x, z = peak
    widths = [profile_fwhm(line, c) for line, c in ((image[:, x, z], y), (image[y, :, z], x), (image[y, x, :], z))]
    lateral = None if None in widths[:2] else (widths[0] * spacing[0] + widths[1] * spacing[1]) / 2  # type: ignore[operator]
    axial = None if widths[2] is None else widths[2] * spacing[2]
    return {"lateral": lateral, "axial": axial}


def bead_fwhm_um(image: np.ndarray, spacing: Sequence[float], peak: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Lateral and axial FWHM (µm) of a background-free bead image through ``peak`` (default: its maximum)."""
    peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(image)), image.shape)) if peak is None else peak
    return _central_fwhm(np.asarray(image, dtype=np.float64), peak, spacing)


def tube_axial_fwhm_um(image: np.ndarray, peak: Sequence[int], z_step_um: float) -> float | None:
    """Axial FWHM (µm) of a bead image along the mean of the ``CHECK_TUBE``-voxel neighbourhood of its peak line
    (the fitted model and the measured bead are read alike, in the same box; None when it does not fall to half)."""
    y, x, z = (int(i) for i in peak)
    k = CHECK_TUBE
    line = np.asarray(image, dtype=np.float64)[max(y - k, 0) : y + k + 1, max(x - k, 0) : x + k + 1, :]
    width = profile_fwhm(line.mean(axis=(0, 1)), z)
    return None if width is None else width * z_step_um


def model_fwhm_um(optics: OpticsParams, sigma_vox: float, half: Sequence[int]) -> dict[str, Any]:
    """Lateral and axial FWHM (µm) of a voxel-centred simulated bead (PSF ⊗ blob) with these optics."""
    shape = tuple(2 * h + 1 for h in half)
    return bead_fwhm_um(bead_model(optics, sigma_vox, shape, (0.0, 0.0, 0.0)), optics.voxel_size_um)  # type: ignore[arg-type]


def report_box(half: Sequence[int]) -> tuple[int, int, int]:
    """Half-size of the box a model's reported FWHM is read in: the bead box, at least :data:`REPORT_HALF_Z` long."""
    return (int(half[0]), int(half[1]), max(int(half[2]), REPORT_HALF_Z))


class DarkStackError(ValueError):
    """A dark stack that cannot be one (the message is about the stack, without its file name)."""


def pooled_camera(volumes: Sequence[np.ndarray], known: DarkCamera | None = None) -> CameraEstimate:
    """Camera estimate from the background blocks of all scans together; with the offset and read noise ``known``
    from a dark stack (:func:`~voxelstudio.metrics.noise.dark_camera`) only the gain is fitted. DarkStackError for a
    dark stack brighter than the scans' background."""
    if known is not None:
        floor = min(float(np.percentile(v, 1)) for v in volumes)
        if known.offset > floor + 3 * known.read_noise + 1e-6:
            raise DarkStackError(
                f"its mean, {known.offset:.4g} counts, is above the scans' darkest voxels ({floor:.4g}): a dark "
                "stack is recorded with no light reaching the camera"
            )
    parts = [block_moments(v, bead_mask(v)) for v in volumes]
    return fit_camera(*(np.concatenate([p[i] for p in parts]) for i in range(3)), parts[0][3], known=known)


def _brightness(beads: BeadAverage, noise_var: float) -> tuple[float, float]:
    """(peak factor, spread): beads are uniform in [1 − spread, 1] × peak, so the peak is the amplitudes' median
    plus their interquartile range (robust to a bead with a hidden neighbour), relative to the averaged bead's
    amplitude (their mean). The amplitudes' measurement noise (``noise_var`` per voxel of one bead) is taken out of
    the interquartile range first."""
    amplitudes = beads.amplitudes
    norm = float(np.sum(beads.image**2))
    q25, median, q75 = (float(q) for q in np.percentile(amplitudes, [25, 50, 75]))
    noise_iqr = 1.349 * math.sqrt(noise_var / max(norm, 1e-12))
    iqr = math.sqrt(max((q75 - q25) ** 2 - noise_iqr**2, 0.0))
    top = median + iqr
    return top / float(np.mean(amplitudes)), (2.0 * iqr / top if top > 0 else 0.0)


def _in_range(cls: type, name: str, value: float, clipped: list[str]) -> float:
    low, high = next(f.metadata["range"] for f in dataclasses.fields(cls) if f.name == name)
    if not low <= value <= high:
        clipped.append(f"{name} {value:.4g} -> {min(max(value, low), high):g}")
    return float(min(max(value, low), high))


def calibrate_volumes(
    volumes: Sequence[Volume],
    *,
    voxel_size: Sequence[float] | None = None,
    wavelength_um: float | None = None,
    na: float | None = None,
    ni: float = OpticsParams().ni,
    dark: DarkCamera | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> Calibration:
    """Calibrate the simulator on raw bead scans of one microscope (see the module docstring); ``dark``: the camera's
    offset and read noise measured on a stack recorded without light (``metrics.noise.dark_camera``). Every error is
    one ValueError line; those of the analysis start with the scans' names."""
    if not volumes:
        raise ValueError("no scans to calibrate on")
    check_given_optics(wavelength_um=wavelength_um, na=na, ni=ni)
    for volume in volumes:
        if volume.shape[2] == 1:
            raise ValueError(f"{volume.label}: a single plane (2-D image): calibration needs a z stack of beads")
    spacing = resolve_spacing(volumes, voxel_size)
    check_simulated_spacing(spacing, "--voxel-size" if voxel_size is not None else "the scans' voxel size")
    for volume in volumes:
        if is_constant(volume.data):
            raise ValueError(f"{volume.label}: the volume is constant ({float(volume.data.min()):g}): no beads to fit")
    try:
        return _calibrate(
            volumes, spacing, wavelength_um=wavelength_um, na=na, ni=ni, dark=dark, report=report, cancel=cancel
        )
    except (ValueError, np.linalg.LinAlgError) as exc:  # the analysis' own words, with the files it was about
        raise ValueError(f"{', '.join(v.label for v in volumes)}: {exc}") from exc


def _calibrate(
    volumes: Sequence[Volume],
    spacing: tuple[float, float, float | None],
    *,
    wavelength_um: float | None,
    na: float | None,
    ni: float,
    dark: DarkCamera | None,
    report: ReportFn,
    cancel: CancelToken | None,
) -> Calibration:
    y, x, z = spacing
    stages = 4
    report(Progress(0, stages, "camera noise"))
    camera = pooled_camera([v.data for v in volumes], dark)
    if not (camera.gain > 0 and math.isfinite(camera.gain)):
        raise ValueError("could not measure the camera gain from the background")
    electrons = [(np.asarray(v.data, dtype=np.float32) - camera.offset) / camera.gain for v in volumes]
    _check(cancel, report, 1, stages, "averaging beads")
    scan_shape = min((v.shape for v in volumes), key=lambda s: s[2])
    half = bead_box((y, x, z), scan_shape)
    beads = average_beads(electrons, half, min_beads=MIN_BEADS)
    half, beads = lengthen_if_cut(electrons, half, beads, scan_shape)
    _check(cancel, report, 2, stages, "fitting the optics")
    free = tuple(n for n, given in (("na", na), ("wavelength_um", wavelength_um)) if given is None)
    free += ("ns", "depth_um") + (("z_step_um",) if z is None else ())
    base = OpticsParams(
        na=1.2 if na is None else na, wavelength_um=0.52 if wavelength_um is None else wavelength_um, ni=ni,
        pixel_um=y, z_step_um=Z_STEP_GUESS_UM if z is None else z,
    )  # fmt: skip
    optics_fit = fit_optics_either_way(beads.image, base, free)
    optics = optics_fit.optics
    spacing = optics.voxel_size_um
    _check(cancel, report, 3, stages, "background and haze")
    read_e = camera.read_noise / camera.gain
    peak_factor, spread = _brightness(beads, noise_var=read_e**2 + float(np.median(electrons[0])))
    photons = optics_fit.amplitude * peak_factor
    ambient = estimate_ambient(electrons, photons=photons, sigma_vox=optics_fit.bead_sigma_vox, spacing=spacing)
    clipped: list[str] = []
    voxels = sum(v.data.size for v in volumes)
    values = {
        "bead_density": beads.n_found / voxels,
        "bead_sigma_vox": optics_fit.bead_sigma_vox,
        "brightness_spread": spread,
        "background": ambient.background,
        "background_variation": ambient.variation,
        "haze": ambient.haze,
        "haze_sigma_um": ambient.haze_sigma_um,
        "photons": photons,
        "read_noise": read_e,
        "offset": camera.offset / camera.gain,
    }
    params = SimParams(optics=optics, **{k: _in_range(SimParams, k, v, clipped) for k, v in values.items()})
    fitted = {name: (getattr(optics, name), sd) for name, sd in optics_fit.errors.items() if hasattr(optics, name)}
    fitted["bead_sigma_vox"] = (optics_fit.bead_sigma_vox, optics_fit.errors["bead_sigma_vox"])
    fitted["photons"] = (photons, photons * camera.gain_sd / camera.gain)
    fitted["read_noise"] = (read_e, camera.read_noise_sd / camera.gain)
    fitted["offset"] = (camera.offset / camera.gain, camera.offset_sd / camera.gain)
    fitted["gain"] = (camera.gain, camera.gain_sd)
    peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(optics_fit.model)), beads.image.shape))
    fwhm = {
        "measured": bead_fwhm_um(beads.image, spacing, peak),
        "model": model_fwhm_um(optics, optics_fit.bead_sigma_vox, report_box(half)),
    }
    check = {
        "measured": tube_axial_fwhm_um(beads.image, peak, spacing[2]),
        "model": tube_axial_fwhm_um(optics_fit.model, peak, spacing[2]),
    }
    given = {"na": na, "wavelength_um": wavelength_um}
    assumed = [f"{name} {getattr(optics, name):g} (given)" for name, value in given.items() if value is not None]
    assumed += [f"ni {ni:g}", f"background_scale_um {params.background_scale_um:g} (default)"]
    if dark is not None:
        assumed += [f"camera offset {camera.offset:.4g} and read noise {camera.read_noise:.3g} counts (dark stack)"]
    assumed += [f"out_of_stack {params.out_of_stack:g} (default)"]
    report(Progress(stages, stages, "calibrated"))
    return Calibration(params, optics_fit, camera, beads, ambient, fitted, fwhm, check, assumed, clipped, scan_shape)


def axially_cut(image: np.ndarray) -> bool:
    """Whether the bead image does not fall to half its peak on both sides along z (its box is too short)."""
    y, x, z = np.unravel_index(int(np.argmax(image)), image.shape)
    return profile_fwhm(image[y, x, :], int(z)) is None


def lengthen_if_cut(
    electrons: Sequence[np.ndarray], half: tuple[int, int, int], beads: BeadAverage, scan_shape: tuple[int, int, int]
) -> tuple[tuple[int, int, int], BeadAverage]:
    """Average the beads again in a box LONGER_BOX times longer along z while the bead is cut by its box and the
    scan allows (strong aberration stretches a bead over microns); keeps the last box with enough beads."""
    limit = (scan_shape[2] - 3) // 2
    while axially_cut(beads.image) and half[2] < limit:
        longer = (half[0], half[1], min(math.ceil(half[2] * LONGER_BOX), limit))
        try:
            beads = average_beads(electrons, longer, min_beads=MIN_BEADS)
        except ValueError:  # too few beads fit the longer box: the problem is reported with the fit
            break
        half = longer
    return half, beads


def _check(cancel: CancelToken | None, report: ReportFn, done: int, total: int, what: str) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled("calibration")
    report(Progress(done, total, what))
