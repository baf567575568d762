"""Simulation parameters: frozen dataclasses whose fields each carry a default, a documented range and a unit.

Every field is declared with :func:`_param`, which stores ``range`` (inclusive valid limits, also the interval
:meth:`SimParams.random` draws from), ``doc`` and ``log`` (draw log-uniformly) in the field metadata.
``OpticsParams.ranges()`` / ``SimParams.ranges()`` list them. Values outside their range raise ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np

COVERSLIP_DESIGN_INDEX = 1.515
"""Refractive index of the coverslip the objective was designed for."""
COVERSLIP_DESIGN_UM = 170.0
"""Coverslip thickness (#1.5) the objective was designed for, µm."""

_T = TypeVar("_T")

IMMERSIONS = (
    (1.515, 0.6, 1.49, 1.52),  # oil, into water (1.33) up to mounting media (1.52)
    (1.406, 0.15, 1.35, 1.42),  # silicone oil
    (1.45, 0.1, 1.30, 1.47),  # glycerol
    (1.333, 0.15, 1.20, 1.38),  # water, into water or tissue
)
"""Objective types of :meth:`OpticsParams.practical`: (immersion index, share of draws, highest NA, highest sample
index)."""


def validate_shape(shape: Any, what: str = "shape") -> tuple[int, int, int]:
    """``shape`` as three positive ints (H, W, Z); ValueError naming ``what`` otherwise."""
    try:
        values = tuple(int(n) for n in shape)
        exact = values == tuple(shape)
    except (TypeError, ValueError):
        values, exact = (), False
    if not exact or len(values) != 3 or min(values) < 1:
        raise ValueError(f"{what} must be three positive integers (H, W, Z), got {shape!r}")
    return values  # type: ignore[return-value]


def _param(default: float, low: float, high: float, doc: str, *, log: bool = False) -> Any:
    return field(default=default, metadata={"range": (low, high), "doc": doc, "log": log})


def _ranges(cls: type) -> dict[str, tuple[float, float]]:
    return {f.name: f.metadata["range"] for f in fields(cls) if "range" in f.metadata}


def _check_ranges(obj: Any) -> None:
    """Validate every ranged field and store it as a plain float (numpy scalars and ints included)."""
    for f in fields(obj):
        if "range" not in f.metadata:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {value!r}")
        value = float(value)
        object.__setattr__(obj, f.name, value)
        low, high = f.metadata["range"]
        if not low <= value <= high:
            raise ValueError(f"{f.name} must be in [{low:g}, {high:g}], got {value:g}")


def _draw(cls: type, rng: np.random.Generator) -> dict[str, float]:
    values = {}
    for f in fields(cls):
        if "range" not in f.metadata:
            continue
        low, high = f.metadata["range"]
        if f.metadata["log"]:
            values[f.name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            values[f.name] = float(rng.uniform(low, high))
    return values


def _from_flat(cls: type[_T], data: Mapping[str, Any], nested: Mapping[str, Any] | None = None) -> _T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} parameter(s): {', '.join(unknown)}")
    values = {name: value for name, value in data.items() if name not in (nested or {})}
    return cls(**values, **(nested or {}))


@dataclass(frozen=True)
class OpticsParams:
    """Widefield microscope optics for the Gibson-Lanni PSF and the voxel grid it is sampled on.

    Defaults: an NA 1.4 oil objective imaging green emission from beads 2 µm deep in water, sampled at 0.1 µm in
    all three axes (Nyquist for the lateral resolution; a typical fine z step). The PSF's FWHM is then about 2.2
    voxels laterally and 7.9 axially, so raw beads (blob * PSF) are about 2.8 times longer than wide in voxels
    while the isotropic target blobs (sigma 1 voxel) are not. Coarser z steps shorten the raw beads in voxels.
    """

    na: float = _param(1.4, 0.8, 1.5, "numerical aperture of the objective (must be below ni)")
    wavelength_um: float = _param(0.52, 0.40, 0.70, "emission wavelength, µm")
    ni: float = _param(1.515, 1.33, 1.52, "refractive index of the immersion medium the objective is designed for")
    ns: float = _param(1.33, 1.33, 1.52, "refractive index of the sample (1.33 water, 1.45 glycerol, 1.52 mounted)")
    ng: float = _param(1.515, 1.51, 1.52, "refractive index of the coverslip (the objective expects 1.515)")
    tg_um: float = _param(170.0, 165.0, 175.0, "coverslip thickness, µm (the objective expects 170)")
    depth_um: float = _param(2.0, 0.0, 20.0, "depth of the beads below the coverslip, µm")
    pixel_um: float = _param(0.1, 0.05, 0.25, "lateral voxel size (y and x), µm")
    z_step_um: float = _param(0.1, 0.05, 0.3, "axial voxel size (focus step), µm")
    z_reversed: bool = field(
        default=False,
        metadata={
            "doc": "the stack's planes run against the focal-scan direction of voxelstudio.sim.psf (a microscope "
            "that steps the other way, or a stack saved in reverse): an aberrated PSF's longer tail then points "
            "to the other end of the stack"
        },
    )

    def __post_init__(self) -> None:
        _check_ranges(self)
        if not isinstance(self.z_reversed, bool):
            raise ValueError(f"z_reversed must be true or false, got {self.z_reversed!r}")
        if self.na >= self.ni:
            raise ValueError(f"na ({self.na:g}) must be below the immersion index ni ({self.ni:g})")

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        """Voxel size (y, x, z) in µm: the spacing of simulated volumes."""
        return (self.pixel_um, self.pixel_um, self.z_step_um)

    @property
    def effective_na(self) -> float:
        """The aperture whose light reaches the image: the NA, capped by the lowest index on the light's way (beyond
        it the light is totally reflected). The PSF integrates the pupil up to it, so an NA above it is not seen."""
        return min(self.na, self.ni, self.ns, self.ng)

    @classmethod
    def ranges(cls) -> dict[str, tuple[float, float]]:
        """Valid (min, max) of every parameter."""
        return _ranges(cls)

    @classmethod
    def random(cls, rng: np.random.Generator) -> OpticsParams:
        """Optics drawn uniformly from the ranges (na and ni are redrawn until na < ni)."""
        for _ in range(1000):
            values = _draw(cls, rng)
            if values["na"] < values["ni"]:
                return cls(**values)
        raise RuntimeError("could not draw valid optics parameters")

    @classmethod
    def practical(cls, rng: np.random.Generator) -> OpticsParams:
        """Optics drawn as objectives are used (:data:`IMMERSIONS`): an immersion medium, an NA that objective type
        reaches, a sample index from water up to a little above the immersion's; the rest as :meth:`random`.

        Uniform draws give a sample denser than the immersion (ns > ni) half the time, and an aberrated PSF's long
        tail then points the other way; in practice an oil objective images water, glycerol or mounted samples
        (ns <= ni) and water or silicone objectives samples close to their own index."""
        values = _draw(cls, rng)
        shares = np.array([immersion[1] for immersion in IMMERSIONS])
        ni, _, na_max, ns_max = IMMERSIONS[int(rng.choice(len(IMMERSIONS), p=shares / shares.sum()))]
        na_low, _ = cls.ranges()["na"]
        ns_low, _ = cls.ranges()["ns"]
        values.update(ni=ni, na=float(rng.uniform(na_low, na_max)), ns=float(rng.uniform(ns_low, ns_max)))
        return cls(**values)

    @property
    def z_direction(self) -> float:
        """+1, or −1 for a reversed stack: the focal-scan distance (in steps) from one plane to the next."""
        return -1.0 if self.z_reversed else 1.0

    def to_dict(self) -> dict[str, float | bool]:
        """Every field by name; ``z_reversed`` only when set (a forward stack's record, and the PSF cache's keys,
        read as before the flag existed)."""
        values = dataclasses.asdict(self)
        if not self.z_reversed:
            del values["z_reversed"]
        return values

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpticsParams:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys raise ValueError."""
        return _from_flat(cls, data)


@dataclass(frozen=True)
class SimParams:
    """Everything that turns bead positions into a (raw, target) pair.

    Intensities are relative to the raw in-focus peak of an isolated bead of brightness 1 (its target peak is 1);
    ``photons`` converts them into photo-electrons and the camera adds read noise and an offset (gain 1 count per
    electron).
    """

    optics: OpticsParams = field(default_factory=OpticsParams)
    bead_density: float = _param(1e-4, 0.0, 5e-4, "probability that a voxel holds a bead centre")
    bead_sigma_vox: float = _param(1.0, 0.5, 2.0, "sigma of the isotropic Gaussian bead blob, voxels")
    brightness_spread: float = _param(
        0.0, 0.0, 0.8, "bead brightness varies uniformly in [1 - spread, 1] (0: all beads equally bright)"
    )
    background: float = _param(0.2, 0.0, 1.0, "mean ambient background level (bead peak = 1)")
    background_variation: float = _param(0.5, 0.0, 0.95, "relative amplitude of the smooth background variation")
    background_scale_um: float = _param(10.0, 2.0, 50.0, "shortest period of the background variation, µm")
    haze: float = _param(0.3, 0.0, 1.0, "mean out-of-focus haze level (bead peak = 1); 0 turns haze off")
    haze_sigma_um: float = _param(1.5, 0.5, 5.0, "lateral sigma of the haze blur, µm (axial sigma is twice that)")
    photons: float = _param(60.0, 10.0, 5000.0, "photo-electrons per unit intensity (at a bead's peak)", log=True)
    read_noise: float = _param(2.0, 0.0, 20.0, "camera read noise, counts rms")
    offset: float = _param(100.0, 0.0, 1000.0, "camera offset (baseline), counts")
    out_of_stack: float = _param(
        2.0,
        0.0,
        3.0,
        "thickness of the bead layers just above and below the stack, in axial PSF FWHMs: their defocused light "
        "reaches the raw but they are not in the target (beads cut by the stack's top and bottom are); 0: none",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.optics, OpticsParams):
            raise ValueError(f"optics must be OpticsParams, got {type(self.optics).__name__}")
        _check_ranges(self)

    @classmethod
    def ranges(cls) -> dict[str, tuple[float, float]]:
        """Valid (min, max) of every parameter, the optics' ones prefixed with ``optics.``."""
        optics = {f"optics.{name}": value for name, value in OpticsParams.ranges().items()}
        return {**_ranges(cls), **optics}

    @classmethod
    def random(cls, rng: np.random.Generator) -> SimParams:
        """Every parameter drawn from its range (log-uniformly for photons), for training general models."""
        return cls(optics=OpticsParams.random(rng), **_draw(cls, rng))

    def replace(self, **changes: Any) -> SimParams:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict."""
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "optics"}
        values["optics"] = self.optics.to_dict()
        return values

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimParams:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys raise ValueError."""
        optics = data.get("optics", {})
        if not isinstance(optics, Mapping):
            raise ValueError("optics must be a mapping of optics parameters")
        return _from_flat(cls, data, {"optics": OpticsParams.from_dict(optics)})
