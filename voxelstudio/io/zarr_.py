"""Zarr and OME-Zarr stores (folders) through ``zarr`` (v2 and v3 formats), read lazily as Dask arrays.

An OME-Zarr image is a group whose ``multiscales`` attribute (OME-NGFF 0.4; under ``ome`` in 0.5) names its axes
and its levels; level 0 (the finest) is the volume, its voxel size the product of the ``scale`` transformations
(units converted to micrometres). Axes are stored (z, y, x); arrays come out in MATLAB order (H, W, Z) = (y, x, z)
as a lazy transpose. Time and channel axes of length 1 are dropped; longer ones must be picked with a variable
``PATH[t=0,c=1]`` (``--variable``). A plain Zarr array (no multiscales) is read as (z, y, x) with spacing 1.0.
Stores are written as OME-NGFF 0.4 (Zarr v2, which every OME-Zarr reader knows), float32, chunked, with a
multiscale pyramid (:mod:`voxelstudio.io.zarr_pyramid`) when they are large; :func:`levels` lists the levels and a
level is read by naming its path as the variable (``--variable 2``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.errors import VolumeReadError, VolumeWriteError
from voxelstudio.core.volume import Spacing
from voxelstudio.io.ome_images import image_groups, pick_image
from voxelstudio.io.units import um_per_unit
from voxelstudio.io.variables import NAME_ONE, VariableInfo, format_shape

SPACING_VARIABLE = None  # the voxel size lives in the multiscales metadata
IS_DIRECTORY = True
DEFAULT_CHUNKS_ZYX = (64, 256, 256)
NGFF_CHUNK_KEYS = {"name": "v2", "separator": "/"}
"""Chunks in nested folders (``0/1/2``), as OME-NGFF 0.4 specifies (and ome-zarr-py writes) for Zarr v2 stores."""
"""Chunk shape written by default (z, y, x): 16 MB float32 chunks, each one block of block-wise prediction."""
_AXIS_WORDS = {"t": "time points", "c": "channels"}
_SELECTION = re.compile(r"^(?P<path>[^\[]*)(?:\[(?P<picks>[^\]]*)\])?$")


@dataclass(frozen=True)
class LazyVolume:
    """A volume not yet read: ``data`` is a Dask array in (H, W, Z) order; ``array`` the Zarr array behind it."""

    data: Any
    spacing: Spacing
    name: str
    array: Any
    axes: tuple[str, ...]
    origin: Spacing = (0.0, 0.0, 0.0)
    """Where voxel (0, 0, 0) lies, (y, x, z) in µm: the image's OME-NGFF translation (kept in written stores)."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]


def _open(path: Path, store: Any = None) -> Any:
    import zarr

    try:
        return zarr.open(store=store if store is not None else str(path), mode="r")
    except Exception as exc:
        raise VolumeReadError(path, f"not a Zarr store ({type(exc).__name__}: {exc})") from exc


ROOT_ARRAY = "array"
"""The name a store that is a single array (no group) goes by: what ``info`` lists and ``--variable`` takes."""


def _arrays(node: Any) -> list[tuple[str, Any]]:
    if not hasattr(node, "members"):
        return [(ROOT_ARRAY, node)]
    return [(name, member) for name, member in node.members(max_depth=None) if hasattr(member, "dtype")]


def _axes(path: Path, image: dict[str, Any]) -> tuple[str, ...]:
    raw = image.get("axes") or ["z", "y", "x"]
    names = tuple(str(a.get("name") if isinstance(a, dict) else a).lower() for a in raw)
    unknown = [a for a in names if a not in "tczyx" or len(a) != 1]
    if unknown or not {"z", "y", "x"} <= set(names):
        raise VolumeReadError(path, f"OME-Zarr axes {','.join(names)} are not supported; a volume has axes z, y, x")
    return names


def _units(path: Path, image: dict[str, Any]) -> dict[str, float] | None:
    """Micrometres per scale unit of the z, y and x axes (micrometres when not given); None, with a warning, when
    one names a unit that is not a known length."""
    units = {}
    for axis in image.get("axes") or []:
        name = str(axis.get("name", "")).lower() if isinstance(axis, dict) else ""
        if name in ("z", "y", "x"):
            unit = str(axis.get("unit") or "micrometer")
            factor = um_per_unit(unit)
            if factor is None:
                warnings.warn(
                    f"{path}: unknown length unit {unit!r} for axis {name}; the voxel size is unknown "
                    "(give it with --voxel-size, or in the window's View tab)",
                    stacklevel=3,
                )
                return None
            units[name] = factor
    return units


def _scale(transforms: Sequence[dict[str, Any]] | None, ndim: int) -> np.ndarray:
    scale = np.ones(ndim)
    for t in transforms or []:
        if t.get("type") == "scale" and len(t.get("scale", [])) == ndim:
            scale *= np.asarray(t["scale"], dtype=np.float64)
    return scale


def _warn_unusable_scales(path: Path, transforms: Sequence[dict[str, Any]] | None, names: Sequence[str]) -> None:
    for t in transforms or []:
        if t.get("type") == "scale" and len(t.get("scale", [])) != len(names):
            warnings.warn(
                f"{path}: an OME-Zarr scale lists {len(t.get('scale', []))} values for the {len(names)} axes "
                f"{','.join(names)}; it is left out, so the voxel size may be unknown",
                stacklevel=3,
            )


def translation_of(transforms: Sequence[dict[str, Any]] | None, ndim: int) -> np.ndarray:
    """The summed ``translation`` of OME-NGFF coordinate transformations (zeros when there is none)."""
    shift = np.zeros(ndim)
    for t in transforms or []:
        if t.get("type") == "translation" and len(t.get("translation", [])) == ndim:
            shift += np.asarray(t["translation"], dtype=np.float64)
    return shift


def _parse_variable(path: Path, variable: str | None) -> tuple[str | None, dict[str, int]]:
    if variable is None:
        return None, {}
    match = _SELECTION.match(variable)
    if match is None:
        raise VolumeReadError(path, f"cannot read the variable {variable!r}; write PATH or PATH[t=0,c=1]")
    picks: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in (match["picks"] or "").split(","))):
        axis, _, index = part.partition("=")
        if axis.strip() not in "tc" or not index.strip().isdigit():
            raise VolumeReadError(path, f"cannot read the axis pick {part!r}; write t=N or c=N")
        picks[axis.strip()] = int(index)
    return match["path"] or None, picks


def _image(path: Path, root: Any, wanted: str | None) -> tuple[str, Any, tuple[str, ...], Spacing | None, Spacing]:
    """(array path, array, axis names, spacing or None, origin) of the volume in a store; the origin is (y, x, z) in
    µm ((0, 0, 0) unless the image's units are known and it is translated)."""
    found, wanted = pick_image(path, root, wanted)
    if found is not None:
        image = found.multiscales[0]
        names = _axes(path, image)
        datasets = image.get("datasets") or []
        if not datasets:
            raise VolumeReadError(path, "OME-Zarr multiscales lists no datasets (no array)")
        level = next((d for d in datasets if d.get("path") == wanted), None) if wanted else datasets[0]
        if level is None:
            listed = ", ".join(found.level_name(str(d.get("path"))) for d in datasets)
            raise VolumeReadError(
                path, f"no multiscale level named {found.level_name(str(wanted))!r}; available: {listed}"
            )
        level_name = found.level_name(str(level["path"]))
        array = _level_array(found.group, level)
        if array is None:
            raise VolumeReadError(path, f"OME-Zarr level {level_name!r} is listed but has no array")
        if array.ndim != len(names):
            raise VolumeReadError(
                path, f"OME-Zarr level {level_name!r} has {array.ndim} dimensions but the axes are {','.join(names)}"
            )
        for transforms in (level.get("coordinateTransformations"), image.get("coordinateTransformations")):
            _warn_unusable_scales(path, transforms, names)
        scale = _scale(level.get("coordinateTransformations"), len(names))
        scale *= _scale(image.get("coordinateTransformations"), len(names))
        if not all(np.isfinite(s) and s > 0 for s in scale[[names.index(a) for a in "yxz"]]):
            raise VolumeReadError(path, f"OME-Zarr scale must be positive numbers, got {scale.tolist()}")
        units = _units(path, image)
        if units is None:
            return level_name, array, names, None, (0.0, 0.0, 0.0)
        spacing = tuple(float(scale[names.index(a)] * units.get(a, 1.0)) for a in "yxz")
        if not all(np.isfinite(s) and s > 0 for s in spacing):
            raise VolumeReadError(path, f"OME-Zarr voxel size out of range: {spacing} µm")
        outer = image.get("coordinateTransformations")  # applied after the level's own
        shift = translation_of(level.get("coordinateTransformations"), len(names)) * _scale(outer, len(names))
        shift += translation_of(outer, len(names))
        origin = tuple(float(shift[names.index(a)] * units.get(a, 1.0)) for a in "yxz")
        if not all(np.isfinite(o) for o in origin):
            origin = (0.0, 0.0, 0.0)
        return level_name, array, names, spacing, origin  # type: ignore[return-value]
    arrays = _arrays(root)
    if not arrays:
        raise VolumeReadError(path, "the Zarr store contains no array")
    if wanted is not None:
        found = [(n, a) for n, a in arrays if n == wanted]
        if not found:
            raise VolumeReadError(path, f"no array named {wanted!r}; available: {', '.join(n for n, _ in arrays)}")
        arrays = found
    candidates = [(n, a) for n, a in arrays if a.ndim == 3] or arrays
    if len(candidates) > 1:
        listed = ", ".join(f"{n} ({format_shape(a.shape)})" for n, a in candidates)
        raise VolumeReadError(path, f"several arrays could be the volume: {listed}; name one ({NAME_ONE})")
    name, array = candidates[0]
    if array.ndim != 3:
        raise VolumeReadError(path, f"array {name!r} has shape {format_shape(array.shape)}; a volume is 3-D (z, y, x)")
    return name, array, ("z", "y", "x"), None, (0.0, 0.0, 0.0)


def open_lazy(path: str | Path, variable: str | None = None, *, store: Any = None) -> LazyVolume:
    """The volume in a (OME-)Zarr store as a lazy (H, W, Z) Dask array; nothing but metadata is read.

    ``store``: a zarr store object to read through instead of ``path`` (e.g. a logging wrapper).
    """
    import dask.array as da

    path = Path(path)
    if not path.is_dir() and store is None:
        raise VolumeReadError(path, "store not found" if not path.exists() else "a Zarr store is a folder")
    wanted, picks = _parse_variable(path, variable)
    root = _open(path, store)
    name, array, names, spacing, origin = _image(path, root, wanted)
    if np.dtype(array.dtype).kind not in "biuf":
        raise VolumeReadError(path, f"array {name!r} has dtype {array.dtype}; only real numbers are volumes")
    absent = sorted(set(picks) - set(names))
    if absent:
        axes = ",".join(names)
        raise VolumeReadError(path, f"array {name!r} has no axis {', '.join(absent)} to pick from (axes {axes})")
    data = da.from_zarr(array)
    index: list[Any] = []
    kept: list[str] = []
    for axis, size in zip(names, array.shape, strict=True):
        if axis in "zyx":
            index.append(slice(None))
            kept.append(axis)
        elif axis in picks:
            if not 0 <= picks[axis] < size:
                raise VolumeReadError(path, f"{axis}={picks[axis]} is out of range; axis {axis} has {size} entries")
            index.append(picks[axis])
        elif size == 1:
            index.append(0)
        else:
            raise VolumeReadError(
                path,
                f"the image has {size} {_AXIS_WORDS[axis]} (axis {axis}, axes {','.join(names)}); a volume is 3-D: "
                f"pick one with the variable '{name}[{axis}=0]' ({NAME_ONE})",
            )
    data = data[tuple(index)].transpose([kept.index(a) for a in "yxz"])
    return LazyVolume(data, spacing or (1.0, 1.0, 1.0), name, array, names, origin)


def compute(path: Path, lazy: Any) -> np.ndarray:
    """Read a (part of a) lazy array; a chunk that does not decode to the array's dtype/shape is a clear error."""
    try:
        return np.asarray(lazy.compute(scheduler="synchronous"))
    except Exception as exc:
        detail = " ".join(str(exc).split())[:200]
        raise VolumeReadError(
            path, f"a chunk cannot be read as the array's dtype and shape (corrupt or foreign chunk: {detail})"
        ) from exc


def describe(path: Path) -> str:
    return "ome-zarr" if image_groups(_open(path)) else "zarr"


def _level_array(root: Any, level: dict[str, Any]) -> Any:
    """The Zarr array a multiscales dataset names; None when it is missing or not an array."""
    try:
        node = root[str(level["path"])]
    except KeyError:
        return None
    return node if hasattr(node, "dtype") else None


def list_entries(path: Path) -> list[VariableInfo]:
    root = _open(path)
    images = image_groups(root)
    if images:
        entries = []
        for image in images:
            names = _axes(path, image.multiscales[0])
            for level in image.multiscales[0].get("datasets") or []:
                array = _level_array(image.group, level)
                if array is None or array.ndim != len(names):
                    continue  # a damaged level is left out; the others stay readable
                shape = dict(zip(names, array.shape, strict=True))
                extra = tuple(shape[a] for a in names if a in "tc")
                hwz = (shape["y"], shape["x"], shape["z"], *extra)
                entries.append(VariableInfo(image.level_name(str(level["path"])), hwz, array.dtype.name))
        return entries
    return [VariableInfo(n, _hwz(a.shape), a.dtype.name) for n, a in _arrays(root)]


def levels(path: str | Path, variable: str | None = None) -> list[Any]:
    """The resolution levels of an OME-Zarr image, finest first (``zarr_pyramid.Level``: path, (H, W, Z) shape,
    spacing): of the image ``variable`` names or holds a level of, in a store of several; a plain Zarr array is one
    level. Reads metadata only."""
    from voxelstudio.io.zarr_pyramid import Level

    path = Path(path)
    root = _open(path)
    image, _ = pick_image(path, root, _parse_variable(path, variable)[0])
    if image is None:
        lazy = open_lazy(path)
        return [Level(lazy.name, lazy.shape, lazy.spacing)]
    found = []
    for dataset in image.multiscales[0].get("datasets") or []:
        try:
            name, array, names, spacing, _ = _image(path, root, image.level_name(str(dataset.get("path"))))
        except VolumeReadError:
            continue  # a damaged level is left out; the others stay readable
        shape = dict(zip(names, array.shape, strict=True))
        found.append(Level(name, (shape["y"], shape["x"], shape["z"]), spacing or (1.0, 1.0, 1.0)))
    return found


def opening_level(path: str | Path, max_voxels: int) -> Any:
    """The level to open for viewing: the finest with at most ``max_voxels`` voxels (the coarsest when none is that
    small); None when the store has one level. Reads metadata only."""
    found = levels(path)
    if len(found) < 2:
        return None
    return next((level for level in found if level.voxels <= max_voxels), found[-1])


def _hwz(shape: Sequence[int]) -> tuple[int, ...]:
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else tuple(shape)


def read_array(path: Path, name: str) -> np.ndarray:
    return compute(path, open_lazy(path, name).data)


def read_spacing(path: Path, entries: list[VariableInfo]) -> Spacing | None:
    return open_lazy(path).spacing


def chunks_for(shape_hwz: Sequence[int], chunks_hwz: Sequence[int] | None = None) -> tuple[int, int, int]:
    """Chunk shape (z, y, x) for a volume of ``shape_hwz``: ``chunks_hwz`` or the default, clipped to the volume."""
    wanted = (chunks_hwz[2], chunks_hwz[0], chunks_hwz[1]) if chunks_hwz else DEFAULT_CHUNKS_ZYX
    zyx = (shape_hwz[2], shape_hwz[0], shape_hwz[1])
    return tuple(max(1, min(int(c), int(s))) for c, s in zip(wanted, zyx, strict=True))  # type: ignore[return-value]


def multiscales_attrs(name: str, spacing: Spacing, origin: Spacing = (0.0, 0.0, 0.0)) -> dict[str, Any]:
    """OME-NGFF 0.4 ``multiscales`` of one level: axes z, y, x in µm, its scale and, when not 0, its translation
    (``origin``: (y, x, z) µm of voxel (0, 0, 0))."""
    y, x, z = spacing
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [z, y, x]}]
    if any(origin):
        transforms.append({"type": "translation", "translation": [origin[2], origin[0], origin[1]]})
    level = {"path": "0", "coordinateTransformations": transforms}
    return {"multiscales": [{"version": "0.4", "name": name, "axes": axes, "datasets": [level]}]}


def create_store(
    target: Path,
    shape_hwz: Sequence[int],
    spacing: Spacing,
    name: str,
    chunks_zyx: Sequence[int],
    origin: Spacing = (0.0, 0.0, 0.0),
) -> Any:
    """An empty float32 OME-Zarr image at ``target`` (missing or an empty folder, which is kept: a writer may hold
    its lock, see ``core.atomic.holding``); returns its level-0 array (axes z, y, x)."""
    import zarr

    root = zarr.open_group(str(target), mode="w-", zarr_format=2)  # "w" would delete and re-create the folder
    root.attrs.update(multiscales_attrs(name, spacing, origin))
    zyx = (int(shape_hwz[2]), int(shape_hwz[0]), int(shape_hwz[1]))
    chunks = tuple(int(c) for c in chunks_zyx)
    return root.create_array(
        "0", shape=zyx, chunks=chunks, dtype="float32", fill_value=0, chunk_key_encoding=NGFF_CHUNK_KEYS
    )


def writer(path: Path, data: np.ndarray, spacing: Spacing, variable: str, mat_version: str | None) -> Callable:
    """A function writing ``data`` (H, W, Z) as an OME-Zarr image into a (temporary) folder."""
    if mat_version is not None:
        raise VolumeWriteError(path, "a MAT version applies to .mat files only")

    def write(target: Path) -> None:
        from voxelstudio.io.zarr_pyramid import write_pyramid

        array = create_store(target, data.shape, spacing, path.name.split(".")[0], chunks_for(data.shape))
        array[...] = np.ascontiguousarray(np.asarray(data, dtype=np.float32).transpose(2, 0, 1))
        write_pyramid(target)

    return write


def voxels(shape: Sequence[int]) -> int:
    return math.prod(int(n) for n in shape)
