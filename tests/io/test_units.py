"""io.units: length units in micrometres, by OME-Zarr name and OME-XML symbol; unknown ones are not guessed."""

from __future__ import annotations

import pytest

from voxelstudio.io.units import um_per_unit


@pytest.mark.parametrize(
    ("unit", "um"),
    [
        ("micrometer", 1.0), ("µm", 1.0), ("μm", 1.0), ("um", 1.0), ("nanometer", 1e-3), ("nm", 1e-3),
        ("Nanometer", 1e-3), ("angstrom", 1e-4), ("Å", 1e-4), ("picometer", 1e-6), ("millimeter", 1e3),
        ("mm", 1e3), ("centimeter", 1e4), ("cm", 1e4), ("meter", 1e6), ("m", 1e6), ("Mm", 1e12), ("inch", 25_400.0),
    ],
)  # fmt: skip
def test_known_units(unit, um):
    assert um_per_unit(unit) == pytest.approx(um)


@pytest.mark.parametrize("unit", ["pixel", "reference frame", "furlong", "second", "MM", ""])
def test_unknown_units_are_not_guessed(unit):
    assert um_per_unit(unit) is None
