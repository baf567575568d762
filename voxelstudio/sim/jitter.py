"""Parameters drawn around fitted ones: each physical value scaled by a random factor in [1 − j, 1 + j]."""

from __future__ import annotations

import dataclasses
from dataclasses import fields

import numpy as np

from voxelstudio.sim.params import OpticsParams, SimParams

FIXED_OPTICS = ("ni", "ng", "tg_um", "pixel_um", "z_step_um")
"""Properties of the instrument (objective design, coverslip, voxel grid) that are not jittered."""


def _jittered(obj: object, rng: np.random.Generator, jitter: float, skip: tuple[str, ...]) -> dict[str, float]:
    values = {}
    for f in fields(obj):  # type: ignore[arg-type]
        if "range" not in f.metadata or f.name in skip:
            continue
        low, high = f.metadata["range"]
        value = getattr(obj, f.name) * rng.uniform(1.0 - jitter, 1.0 + jitter)
        values[f.name] = float(min(max(value, low), high))
    return values


def jitter_params(params: SimParams, rng: np.random.Generator, jitter: float) -> SimParams:
    """``params`` with every sample, camera and optics value (not the instrument's, see :data:`FIXED_OPTICS`)
    multiplied by a factor drawn uniformly from [1 − jitter, 1 + jitter] and clipped to its range; na stays below ni."""
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter:g}")
    if jitter == 0:
        return params
    optics = _jittered(params.optics, rng, jitter, FIXED_OPTICS)
    optics["na"] = min(optics["na"], params.optics.ni - 0.01)
    optics["ns"] = max(optics["ns"], OpticsParams.ranges()["ns"][0])
    new_optics = dataclasses.replace(params.optics, **optics)
    return dataclasses.replace(params, optics=new_optics, **_jittered(params, rng, jitter, ()))
