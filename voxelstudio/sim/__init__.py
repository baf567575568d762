"""Physics simulator of paired (raw, target) bead volumes: Gibson-Lanni PSF, ambient light, haze and camera noise.

Names are imported on first use, so ``import voxelstudio.sim`` (and reading ``voxelstudio.sim.params`` for CLI help)
does not pull in scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxelstudio.sim.pair import simulate_pair
    from voxelstudio.sim.params import OpticsParams, SimParams
    from voxelstudio.sim.psf import make_psf

_HOMES = {
    "OpticsParams": "voxelstudio.sim.params",
    "SimParams": "voxelstudio.sim.params",
    "make_psf": "voxelstudio.sim.psf",
    "simulate_pair": "voxelstudio.sim.pair",
}

__all__ = ["OpticsParams", "SimParams", "make_psf", "simulate_pair"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
