"""Parameters drawn around fitted ones: each physical value moved by up to ``jitter`` of itself (a refractive
index by up to ``jitter`` of its mismatch with the immersion medium), uniformly and symmetrically."""

from __future__ import annotations

import dataclasses
from dataclasses import fields

import numpy as np

from voxelstudio.sim.params import SimParams

FIXED_OPTICS = ("ni", "ng", "tg_um", "pixel_um", "z_step_um")
"""Properties of the instrument (objective design, coverslip, voxel grid) that are not jittered."""


def _jittered(
    obj: object,
    rng: np.random.Generator,
    jitter: float,
    skip: tuple[str, ...],
    scales: dict[str, float],
    bounds: dict[str, tuple[float, float]],
) -> dict[str, float]:
    """Every ranged field of ``obj`` but ``skip``, drawn uniformly within ``jitter`` times its scale (``scales``,
    else its value) on either side; the half-width shrinks to stay inside the range (``bounds``, else the field's),
    so the draws stay centred on the value instead of piling up on a bound."""
    values = {}
    for f in fields(obj):  # type: ignore[arg-type]
        if "range" not in f.metadata or f.name in skip:
            continue
        low, high = bounds.get(f.name, f.metadata["range"])
        value = float(getattr(obj, f.name))
        half_width = min(jitter * abs(scales.get(f.name, value)), value - low, high - value)
        values[f.name] = value + half_width * float(rng.uniform(-1.0, 1.0)) if half_width > 0 else value
    return values


def jitter_params(params: SimParams, rng: np.random.Generator, jitter: float) -> SimParams:
    """``params`` with every sample, camera and optics value (not the instrument's, see :data:`FIXED_OPTICS`)
    drawn around it (see the module docstring); na stays below ni."""
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter:g}")
    if jitter == 0:
        return params
    mismatch = {"ns": params.optics.ni - params.optics.ns}  # what shapes the PSF; ±10 % of ns itself spans its range
    below_ni = {"na": (params.optics.ranges()["na"][0], min(params.optics.ranges()["na"][1], params.optics.ni - 0.01))}
    optics = _jittered(params.optics, rng, jitter, FIXED_OPTICS, mismatch, below_ni)
    new_optics = dataclasses.replace(params.optics, **optics)
    return dataclasses.replace(params, optics=new_optics, **_jittered(params, rng, jitter, (), {}, {}))
