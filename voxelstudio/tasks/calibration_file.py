"""The calibration file: ``PARAMS.json`` (simulator parameters + report) and ``PARAMS.psf.tif`` (the measured bead).

``PARAMS.json`` holds ``sim_params`` (:meth:`SimParams.to_dict`), ``measured_psf`` (the absolute path of a measured
PSF stack the simulator convolves with instead of Gibson-Lanni, or null), ``bead_image`` (the measured bead's file
name, beside the JSON) and ``report`` (:func:`calibration_report`). :func:`load_params` also reads a plain
``SimParams`` JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.atomic import check_not_an_input, check_output_folder, write_atomically
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.metrics.noise import DarkCamera, dark_camera
from voxelstudio.sim.params import SimParams
from voxelstudio.tasks.calibrate import Calibration, resolve_spacing

FORMAT = "voxelstudio-calibration"


def bead_image_path(params_path: str | Path) -> Path:
    """``PARAMS.psf.tif`` beside ``PARAMS.json``."""
    path = Path(params_path)
    return path.with_name(f"{path.name.removesuffix('.json')}.psf.tif")


def _finite_or_none(node: Any) -> Any:
    """``node`` with every NaN or infinite float replaced by None (strict JSON; "not determined")."""
    if isinstance(node, dict):
        return {key: _finite_or_none(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_finite_or_none(value) for value in node]
    if isinstance(node, (float, np.floating)):
        return float(node) if math.isfinite(node) else None
    return node


def calibration_report(cal: Calibration, sources: Sequence[str | Path] = ()) -> dict[str, Any]:
    """JSON-ready summary: beads, fitted values with standard errors (None where the fit cannot tell), fit quality,
    FWHM, assumptions."""
    return _finite_or_none(_report(cal, sources))


def _report(cal: Calibration, sources: Sequence[str | Path]) -> dict[str, Any]:
    fit = cal.optics_fit
    return {
        "sources": [str(s) for s in sources],
        "beads_found": cal.beads.n_found,
        "beads_used": len(cal.beads.amplitudes),
        "beads_saturated": cal.beads.n_saturated,
        "fitted": {  # sd None: the beads do not determine the value
            name: {"value": value, "sd": sd if math.isfinite(sd) else None} for name, (value, sd) in cal.fitted.items()
        },
        "ambient": {
            "background": cal.params.background,
            "background_variation": cal.params.background_variation,
            "haze": cal.params.haze,
            "haze_sigma_um": cal.params.haze_sigma_um,
        },
        "z_reversed": cal.params.optics.z_reversed,
        "camera_blocks": cal.camera.n_blocks,
        "fit": {
            "converged": cal.converged,
            "problems": cal.problems,
            "relative_residual": fit.relative_residual,
            "noise_ratio": fit.noise_ratio,
        },
        "fwhm_um": cal.fwhm_um,
        "axial_check_um": cal.axial_check_um,
        "assumed": cal.assumed,
        "clipped": cal.clipped,
    }


def calibration_record(
    cal: Calibration, *, sources: Sequence[str | Path] = (), measured_psf: str | Path | None = None, bead_image: str
) -> dict[str, Any]:
    """The content of ``PARAMS.json``."""
    return {
        "format": FORMAT,
        "version": 1,
        "sim_params": cal.params.to_dict(),
        "measured_psf": None if measured_psf is None else str(Path(measured_psf).resolve()),
        "bead_image": bead_image,
        "report": calibration_report(cal, sources),
    }


def write_calibration(
    cal: Calibration,
    out: str | Path,
    *,
    sources: Sequence[str | Path] = (),
    measured_psf: str | Path | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write ``PARAMS.json`` and ``PARAMS.psf.tif`` (both atomically; the bead image first); returns both paths."""
    out = Path(out)
    if out.suffix != ".json":
        raise ValueError(f"{out}: the parameter file must end in .json")
    bead_path = bead_image_path(out)
    for path in (out, bead_path):
        if path.exists() and not overwrite:
            raise ValueError(f"{path}: already exists; pass --overwrite to replace it")
    record = calibration_record(cal, sources=sources, measured_psf=measured_psf, bead_image=bead_path.name)
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"  # before any file is written
    bead = Volume(cal.beads.image.astype(np.float32), cal.params.optics.voxel_size_um, name="measured_bead")
    save_volume(bead, bead_path, overwrite=overwrite)
    write_atomically(out, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite)
    return out, bead_path


def load_params(path: str | Path) -> tuple[SimParams, np.ndarray | None, dict[str, Any]]:
    """(SimParams, measured PSF array or None, the whole record) from a calibration file or a SimParams JSON."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a JSON file (binary content)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a JSON file ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object of simulator parameters")
    if isinstance(record.get("pairs"), list) and "generator" in record:
        raise ValueError(
            f"{path}: the record of a simulated data set (its pairs' parameters), not simulator parameters; give a "
            "calibrate output or a SimParams JSON"
        )
    data = record.get("sim_params", record) if record.get("format") == FORMAT else record
    if not isinstance(data, dict):
        raise ValueError(f"{path}: sim_params must be a JSON object of simulator parameters")
    try:
        params = SimParams.from_dict(data)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a field of the wrong JSON type
        raise ValueError(f"{path}: {exc}") from None
    psf_path = record.get("measured_psf") if record.get("format") == FORMAT else None
    if psf_path is not None and not isinstance(psf_path, str):
        raise ValueError(f"{path}: measured_psf must be the path of a PSF stack, got {psf_path!r}")
    if psf_path is None:
        return params, None, record
    from voxelstudio.sim.measured_psf import prepare_psf

    psf = np.asarray(load_volume(psf_path).data)
    try:  # the problem, then, is the PSF's; the file that named it says where it came from
        prepare_psf(psf)
    except ValueError as exc:
        raise ValueError(f"{psf_path} (the measured PSF {path} names): {exc}") from exc
    return params, psf, record


class NotConvergedError(ValueError):
    """The optics fit did not converge; nothing was written."""


def load_scans(paths: Sequence[str | Path]) -> list[Volume]:
    """The raw scans; ValueError for none, for a file given twice, or for a file that is not a 3-D volume."""
    if not paths:
        raise ValueError("no raw scans given")
    seen: set[Path] = set()
    for path in paths:  # pooled twice, its beads would count double and the uncertainties shrink
        resolved = Path(path).resolve()
        if resolved in seen:
            raise ValueError(f"{path}: given twice; each scan's beads are pooled once")
        seen.add(resolved)
    return [load_volume(p) for p in paths]


def load_dark(path: str | Path) -> DarkCamera:
    """The camera's offset and read noise measured on the dark stack at ``path``; ValueError naming the file when it
    cannot serve as one."""
    try:
        return dark_camera(np.asarray(load_volume(path).data, dtype=np.float32))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def check_measured_psf(psf_path: str | Path, spacing: tuple[float, float, float]) -> np.ndarray:
    """The measured PSF stack; ValueError when its file states another voxel size than the scans' (a 0 in
    ``spacing`` is not checked)."""
    psf = load_volume(psf_path)
    stated = psf.known_spacing
    if stated is not None and not np.allclose(
        [s for s, t in zip(stated, spacing, strict=True) if t], [t for t in spacing if t], rtol=0.01
    ):
        raise ValueError(f"{psf_path}: voxel size {stated} differs from the scans' {tuple(spacing)}; resample it first")
    from voxelstudio.sim.measured_psf import prepare_psf

    try:
        return prepare_psf(psf.data)
    except ValueError as exc:
        raise ValueError(f"{psf_path}: {exc}") from exc


def calibrate_files(
    paths: Sequence[str | Path],
    out: str | Path | None,
    *,
    psf: str | Path | None = None,
    force: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> tuple[Calibration, tuple[Path, Path] | None]:
    """Calibrate on the scans at ``paths`` (``options`` go to :func:`calibrate_volumes`) and write ``out`` and its
    bead image unless ``out`` is None. A fit that did not converge raises :class:`NotConvergedError` (nothing
    written) unless ``force``."""
    if out is not None and Path(out).suffix != ".json":
        raise ValueError(f"{out}: the parameter file must end in .json")
    if out is not None:  # before the fit: a folder problem found after it would cost the user its minute
        check_output_folder(Path(out).parent)
        check_not_an_input(bead_image_path(out), {"measured PSF (--psf)": psf})
        for path in (Path(out), bead_image_path(out)):
            if path.exists() and not overwrite:
                raise ValueError(f"{path}: already exists; pass --overwrite to replace it")
    cal = calibrate_checked(load_scans(paths), psf=psf, force=force, **options)
    if out is None:
        return cal, None
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return cal, write_calibration(cal, out, sources=paths, measured_psf=psf, overwrite=overwrite)


def calibrate_checked(
    volumes: Sequence[Volume],
    *,
    psf: str | Path | None = None,
    dark: str | Path | None = None,
    force: bool = False,
    **options: Any,
) -> Calibration:
    """Calibrate on loaded scans (``options`` go to :func:`calibrate_volumes`) after checking the measured PSF's
    voxel size; ``dark`` is the file of a stack recorded without light (the camera's offset and read noise). A fit
    that did not converge raises :class:`NotConvergedError` unless ``force``."""
    from voxelstudio.tasks.calibrate import DarkStackError, calibrate_volumes

    if psf is not None:
        y, x, z = resolve_spacing(volumes, options.get("voxel_size"))
        check_measured_psf(psf, (y, x, z if z is not None else 0.0))
    camera = None if dark is None else load_dark(dark)  # before the calibration's minute of work
    try:
        cal = calibrate_volumes(volumes, dark=camera, **options)
    except ValueError as exc:
        if isinstance(exc.__cause__, DarkStackError):
            raise ValueError(f"{dark}: {exc.__cause__}") from exc
        raise
    if not cal.converged and not force:
        raise NotConvergedError(
            f"the calibration is not trustworthy: {'; '.join(cal.problems)}; nothing written (--force writes it anyway)"
        )
    return cal
