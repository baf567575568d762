"""Length units in micrometres: OME-Zarr's UDUNITS-2 names ("nanometer") and OME-XML's UnitsLength symbols ("nm").

An unknown unit is not guessed: readers treat the voxel size as unknown and warn, rather than read angstroms or
metres as micrometres.
"""

from __future__ import annotations

_PREFIXES = {
    "yotta": ("Y", 24), "zetta": ("Z", 21), "exa": ("E", 18), "peta": ("P", 15), "tera": ("T", 12),
    "giga": ("G", 9), "mega": ("M", 6), "kilo": ("k", 3), "hecto": ("h", 2), "deca": ("da", 1), "": ("", 0),
    "deci": ("d", -1), "centi": ("c", -2), "milli": ("m", -3), "micro": ("µ", -6), "nano": ("n", -9),
    "pico": ("p", -12), "femto": ("f", -15), "atto": ("a", -18), "zepto": ("z", -21), "yocto": ("y", -24),
}  # fmt: skip
_INCH_UM = 25_400.0
UM_PER_UNIT: dict[str, float] = {
    **{f"{name}meter": 10.0 ** (power + 6) for name, (_, power) in _PREFIXES.items()},
    **{f"{symbol}m": 10.0 ** (power + 6) for symbol, power in _PREFIXES.values()},
    "μm": 1.0, "um": 1.0, "micron": 1.0, "angstrom": 1e-4, "Å": 1e-4,
    "inch": _INCH_UM, "in": _INCH_UM, "foot": 12 * _INCH_UM, "ft": 12 * _INCH_UM, "yard": 36 * _INCH_UM,
    "yd": 36 * _INCH_UM, "mile": 63_360 * _INCH_UM, "mi": 63_360 * _INCH_UM, "thou": _INCH_UM / 1000,
    "pt": _INCH_UM / 72,
}  # fmt: skip
"""Micrometres per unit; the metre with every SI prefix by name and by symbol, and the others OME lists."""


def um_per_unit(unit: str) -> float | None:
    """Micrometres in one ``unit`` (a symbol as written, or a name in any case); None when it is not a length unit
    known here (also OME's "pixel" and "reference frame", which carry no physical size)."""
    unit = unit.strip()
    if unit in UM_PER_UNIT:
        return UM_PER_UNIT[unit]
    name = unit.lower()
    return UM_PER_UNIT.get(name) if len(name) > 2 else None  # "MM" is not millimetres; "Nanometer" is nanometres
