"""TIFF stacks through tifffile.

Volumes are written as float32 ImageJ hyperstacks: axes ZYX on disk (our (H, W, Z) = (y, x, z) array transposed),
XResolution/YResolution = 1/x and 1/y pixels per micrometre, and ``spacing`` = z with ``unit`` = ``um`` in the ImageJ
description, which is where Fiji looks for the voxel size. Any grayscale series whose non-trivial axes are one stack
axis followed by Y and X (ZYX, IYX, QYX, ...) reads as a volume; each series in a file is offered as ``series<i>``.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile

from voxelstudio.core.errors import VolumeReadError
from voxelstudio.core.volume import Spacing
from voxelstudio.io.units import um_per_unit
from voxelstudio.io.variables import VariableInfo, format_shape

SPACING_VARIABLE = None  # TIFF keeps the voxel size in its tags, not in an array
DEFAULT_Z_STEP_UM = 1.0
"""The z step when a file states none (as for any volume without a voxel size)."""

_IMAGEJ_UNITS = {"\\u00b5m": "µm", "microns": "micron"}
"""How ImageJ writes some units (an escaped micro sign, a plural) -> the unit."""
_STACK_AXES = "ZIQTC"  # any one of these may act as the z axis of a grayscale stack


class _CaptureWarnings(logging.Handler):
    """Collects tifffile's warnings for the current thread's read (so errors can say what tifffile noticed).

    Being a handler on the ``tifffile`` logger also keeps those warnings off stderr when the application has not
    configured logging; they still propagate to any handlers it has configured.
    """

    local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        messages = getattr(self.local, "messages", None)
        if messages is not None:
            messages.append(" ".join(record.getMessage().split()))


logging.getLogger("tifffile").addHandler(_CaptureWarnings(logging.WARNING))


@contextmanager
def _open(path: Path) -> Iterator[tifffile.TiffFile]:
    """Open ``path``; failures become VolumeReadError mentioning the first warning tifffile logged."""
    _CaptureWarnings.local.messages = messages = []
    try:
        with tifffile.TiffFile(path) as tif:
            yield tif
    except VolumeReadError:
        raise
    except Exception as exc:
        noticed = f"{messages[0]}; " if messages else ""
        raise VolumeReadError(path, f"corrupt or truncated TIFF ({noticed}{type(exc).__name__}: {exc})") from exc
    finally:
        _CaptureWarnings.local.messages = None


def _layout(series: tifffile.TiffPageSeries) -> tuple[str, tuple[int, ...]]:
    """The series' axes and shape without singleton axes; a single image (YX, or one plane of any axis) is a 1-slice
    stack."""
    axes, shape = series.get_axes(False), series.get_shape(False)
    kept = [(a, n) for a, n in zip(axes, shape, strict=True) if n > 1 or a in "YX"]
    if len(kept) == 2:
        kept.insert(0, ("Z", 1))
    return "".join(a for a, _ in kept), tuple(n for _, n in kept)


def _is_stack(axes: str) -> bool:
    return len(axes) == 3 and axes[0] in _STACK_AXES and axes[1:] == "YX"


def _matlab_shape(axes: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if _is_stack(axes):
        return shape[1], shape[2], shape[0]
    return shape  # 2-D images and unsupported layouts are reported as stored


def _check_imagej_count(path: Path, tif: tifffile.TiffFile, series: tifffile.TiffPageSeries) -> None:
    announced = (tif.imagej_metadata or {}).get("images")
    if not tif.is_imagej or not isinstance(announced, int):
        return
    axes, shape = _layout(series)
    present = int(np.prod([n for a, n in zip(axes, shape, strict=True) if a not in "YXS"]))
    if present != announced:
        raise VolumeReadError(
            path, f"ImageJ header announces {announced} images but {present} could be read (truncated or corrupt)"
        )


def describe(path: Path) -> str:
    with _open(path) as tif:
        return "imagej-tiff" if tif.is_imagej else "ome-tiff" if tif.is_ome else "tiff"


def list_entries(path: Path) -> list[VariableInfo]:
    with _open(path) as tif:
        entries = []
        for index, series in enumerate(tif.series):
            if index == 0:
                _check_imagej_count(path, tif, series)
            axes, shape = _layout(series)
            entries.append(VariableInfo(f"series{index}", _matlab_shape(axes, shape), series.dtype.name))
        return entries


def read_array(path: Path, name: str) -> np.ndarray:
    """The named series as (H, W, Z) in the stored dtype."""
    with _open(path) as tif:
        index = int(name.removeprefix("series")) if name.removeprefix("series").isdigit() else -1
        if not 0 <= index < len(tif.series):
            raise VolumeReadError(path, f"no TIFF series named {name!r}")
        series = tif.series[index]
        axes, shape = _layout(series)
        if not _is_stack(axes):
            raise VolumeReadError(
                path,
                f"TIFF {name} has axes {axes} and shape {format_shape(shape)}; "
                "a volume is one stack of grayscale images (axes ZYX)",
            )
        stack = series.asarray().reshape(shape)
        return stack.transpose(1, 2, 0)


def _pixel_size(tif: tifffile.TiffFile, tag_name: str) -> float | None:
    tag = tif.pages.first.tags.get(tag_name)
    if tag is None:
        return None
    numerator, denominator = tag.value
    return denominator / numerator if numerator > 0 and denominator > 0 else None


def _ome_spacing(path: Path, xml: str) -> Spacing | None:
    """(y, x, z) in micrometres from the first OME Pixels element's PhysicalSize* attributes (None when absent)."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise VolumeReadError(path, f"the OME-XML metadata cannot be parsed ({exc})") from exc
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or pixels.get("PhysicalSizeX") is None:
        return None
    sizes = []
    for axis in "YXZ":
        if axis == "Y" and pixels.get("PhysicalSizeY") is None:
            axis = "X"  # square pixels: the width, in its own unit
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:  # a z step is not a pixel width: sections are usually much thicker
            problem = f"the OME-XML gives no PhysicalSizeZ; using the default z step {DEFAULT_Z_STEP_UM} µm"
            warnings.warn(f"{path}: {problem}", stacklevel=2)
            sizes.append(DEFAULT_Z_STEP_UM)
            continue
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
        scale = um_per_unit(unit)
        if scale is None:
            warnings.warn(f"{path}: unknown length unit {unit!r} of PhysicalSize{axis}; the voxel size is unknown",
                          stacklevel=2)  # fmt: skip
            return None
        sizes.append(float(value) * scale)
    if not all(np.isfinite(v) and v > 0 for v in sizes):
        raise VolumeReadError(path, f"the OME physical sizes must be positive numbers, got {sizes}")
    return sizes[0], sizes[1], sizes[2]


def is_ome_name(path: Path) -> bool:
    return path.name.lower().endswith((".ome.tif", ".ome.tiff"))


def read_spacing(path: Path, entries: list[VariableInfo]) -> Spacing | None:
    """(y, x, z) in micrometres from OME-XML or ImageJ metadata; None when the file states no known length unit."""
    with _open(path) as tif:
        if tif.is_ome and tif.ome_metadata:
            return _ome_spacing(path, tif.ome_metadata)
        metadata = tif.imagej_metadata or {}
        unit = str(metadata.get("unit", "")).strip()
        unit = _IMAGEJ_UNITS.get(unit.lower(), unit)
        scale = um_per_unit(unit) or um_per_unit(unit.lower())  # ImageJ users write "UM" and "Microns" too
        if scale is None:  # "pixel" (uncalibrated) or a unit that is not a length: the voxel size is unknown
            if unit and unit.lower() not in ("pixel", "pixels"):
                warnings.warn(f"{path}: unknown ImageJ length unit {unit!r}; the voxel size is unknown", stacklevel=2)
            return None
        x = _pixel_size(tif, "XResolution") or 1.0
        y = _pixel_size(tif, "YResolution") or x
        z = float(metadata.get("spacing", 1.0))
    if not all(np.isfinite(v) and v > 0 for v in (x, y, z)):
        raise VolumeReadError(path, f"the ImageJ voxel size must be three positive numbers, got y={y}, x={x}, z={z}")
    return y * scale, x * scale, z * scale


def writer(path: Path, data: np.ndarray, spacing: Spacing, variable: str, mat_version: str | None) -> Callable:
    """A function writing ``data`` (H, W, Z float32) as an ImageJ hyperstack; TIFF has no variable names."""
    y, x, z = spacing
    if is_ome_name(path):  # OME-TIFF: physical sizes in the OME-XML, which Bio-Formats/QuPath/napari read
        ome = {"axes": "ZYX", "PhysicalSizeX": x, "PhysicalSizeY": y, "PhysicalSizeZ": z}
        ome.update({f"PhysicalSize{a}Unit": "µm" for a in "XYZ"})
        return lambda target: tifffile.imwrite(target, data.transpose(2, 0, 1), ome=True, metadata=ome)

    def write(target: Path) -> None:
        tifffile.imwrite(
            target,
            data.transpose(2, 0, 1),
            imagej=True,
            resolution=(1.0 / x, 1.0 / y),
            metadata={"axes": "ZYX", "spacing": z, "unit": "um"},
        )

    return write
