"""MATLAB ``.mat`` volumes: v4/v5/v7 through :mod:`scipy.io`, v7.3 (HDF5) through :mod:`voxelstudio.io.matlab73`.

The voxel size is stored beside the volume as a 1x3 double variable ``voxel_size_um`` = ``[y x z]`` in micrometres
(MATLAB: ``load f.mat voxel voxel_size_um``). It is metadata, never offered as a volume.

Writing uses v5 with compression (MATLAB's ``-v7``) unless ``mat_version="7.3"`` or the volume is too large for v5.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from scipy.io.matlab import matfile_version

from voxelstudio.core.errors import VolumeReadError, VolumeWriteError
from voxelstudio.core.volume import Spacing
from voxelstudio.io import matlab73
from voxelstudio.io.matlab5_check import check_numeric_data, read_headers
from voxelstudio.io.variables import VariableInfo, format_bytes, parse_spacing

SPACING_VARIABLE = "voxel_size_um"
MAT_V5_MAX_BYTES = 2**31
"""v5 stores sizes as 32-bit integers; larger volumes are written as v7.3."""

MAT_VERSIONS = ("5", "7", "7.3")
"""Accepted ``mat_version`` values; "5" and "7" both mean v5 with compression (MATLAB's default ``-v7``)."""

_DTYPE_OF_CLASS = {"double": "float64", "single": "float32", "logical": "bool"}
_MATLAB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


def _major_version(path: Path) -> int:
    """0 for v4, 1 for v5 (MATLAB's -v6/-v7), 2 for v7.3 (HDF5)."""
    return 2 if h5py.is_hdf5(path) else matfile_version(str(path), appendmat=False)[0]


def describe(path: Path) -> str:
    """The file's MAT version: ``"mat-v4"``, ``"mat-v5"`` or ``"mat-v7.3"``."""
    major = _major_version(path)
    return {0: "mat-v4", 1: "mat-v5", 2: "mat-v7.3"}.get(major, f"mat-v{major}")


def list_entries(path: Path) -> list[VariableInfo]:
    """All variables with shape and class, read from the headers only (nothing is loaded)."""
    major = _major_version(path)
    if major == 2:
        return matlab73.list_entries(path)
    if major == 0:
        listed = [
            (name, shape, matlab_class, False)
            for name, shape, matlab_class in scipy.io.whosmat(str(path), appendmat=False)
        ]
    else:  # from our own walk of the headers: scipy's whosmat fails on MATLAB objects (string, table, datetime)
        headers = read_headers(path)
        listed = [(h.name or "__function_workspace__", h.shape, h.class_name, h.is_complex) for h in headers]
    entries = []
    for name, shape, matlab_class, is_complex in listed:
        dtype = _DTYPE_OF_CLASS.get(matlab_class, matlab_class)
        if is_complex and dtype in ("float32", "float64"):
            dtype = "complex64" if dtype == "float32" else "complex128"
        elif is_complex:
            dtype = f"complex {dtype}"
        entries.append(VariableInfo(name, tuple(int(n) for n in shape), dtype))
    return entries


def read_array(path: Path, name: str) -> np.ndarray:
    """One variable in MATLAB order, as stored (no conversion)."""
    major = _major_version(path)
    if major == 2:
        return matlab73.read_array(path, name)
    if major == 1:
        header = next((h for h in read_headers(path) if h.name == name), None)
        if header is None:
            raise VolumeReadError(path, f"variable {name!r} is listed by scipy but not found in the file's structure")
        check_numeric_data(path, header)
    contents = scipy.io.loadmat(str(path), variable_names=[name], appendmat=False)
    if name not in contents:
        raise VolumeReadError(path, f"variable {name!r} is listed in the header but could not be read")
    return contents[name]


def read_spacing(path: Path, entries: list[VariableInfo]) -> Spacing | None:
    """``voxel_size_um`` as (y, x, z), or None when the file has none."""
    info = next((v for v in entries if v.name == SPACING_VARIABLE), None)
    if info is None:
        return None
    if not info.is_numeric or int(np.prod(info.shape)) != 3:
        raise VolumeReadError(
            path, f"{SPACING_VARIABLE} must be 3 numbers [y x z], found {info.shape_text} {info.dtype}"
        )
    return parse_spacing(path, read_array(path, SPACING_VARIABLE), SPACING_VARIABLE)


def usable_variable(name: str) -> bool:
    """Whether MATLAB can name the volume ``name`` (letters, digits and _, starting with a letter, at most 63
    characters; not the voxel-size variable)."""
    return bool(_MATLAB_NAME.fullmatch(name)) and name != SPACING_VARIABLE


def writer(
    path: Path, data: np.ndarray, spacing: Spacing, variable: str, mat_version: str | None
) -> Callable[[Path], None]:
    """Check the request and return the function that writes it to a (temporary) path."""
    if not usable_variable(variable):
        raise VolumeWriteError(
            path,
            f"{variable!r} is not a usable MATLAB variable name (letters, digits and _, starting with a letter, "
            f"at most 63 characters, not {SPACING_VARIABLE!r})",
        )
    if mat_version is not None and mat_version not in MAT_VERSIONS:
        raise VolumeWriteError(path, f"unknown MAT version {mat_version!r}; use 5 or 7.3")
    too_big = data.nbytes >= MAT_V5_MAX_BYTES
    if mat_version in ("5", "7") and too_big:
        raise VolumeWriteError(
            path, f"the volume ({format_bytes(data.nbytes)}) is too large for MAT v5 (2 GB limit); use MAT version 7.3"
        )
    variables = {variable: data, SPACING_VARIABLE: np.asarray([spacing], dtype=np.float64)}
    if mat_version == "7.3" or too_big:
        return lambda target: matlab73.write(target, variables)

    def write_v5(target: Path) -> None:
        with open(target, "wb") as handle:
            scipy.io.savemat(handle, variables, format="5", do_compression=True, oned_as="row")

    return write_v5
