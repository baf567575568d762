"""Mesh files (.stl/.obj/.ply) to occupancy grids with pyvista, for classification data sets.

The mesh is centred and scaled uniformly so its longest side spans the grid minus a margin of 1/8 of the grid on
each side (VoxNet's 24 of 32 voxels), then filled with ``voxelize_binary_mask``. Axes map x -> H, y -> W, z -> Z.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyvista as pv

from voxelstudio.core.errors import VolumeReadError


def voxelize_mesh(path: str | Path, shape: Sequence[int] = (32, 32, 32)) -> np.ndarray:
    """A closed surface mesh file as a uint8 occupancy grid of ``shape``."""
    path = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mesh = pv.read(path)
        surface = mesh.extract_surface(algorithm="dataset_surface").triangulate().clean()
    except Exception as exc:  # VTK readers raise many types; the user needs one line naming the file
        raise VolumeReadError(path, f"cannot read the mesh ({type(exc).__name__}: {exc})") from exc
    if surface.n_points == 0 or surface.n_cells == 0:
        problem = "cannot read the mesh; it is truncated, corrupt or of another type" if caught else "no faces"
        raise VolumeReadError(path, problem)
    return voxelize_surface(surface, shape, path=path)


def voxelize_surface(surface: pv.PolyData, shape: Sequence[int], *, path: Path | None = None) -> np.ndarray:
    """Fill a closed triangulated surface into a uint8 grid of ``shape`` (see the module docstring)."""
    shape = tuple(int(n) for n in shape)
    bounds = np.asarray(surface.bounds, dtype=np.float64).reshape(3, 2)
    extent = float((bounds[:, 1] - bounds[:, 0]).max())
    if not extent > 0:
        raise VolumeReadError(path, "the mesh is flat or a single point")
    margin = max(1, round(min(shape) / 8))
    spacing = extent / max(min(shape) - 2 * margin - 1, 1)
    centre = bounds.mean(axis=1)
    origin = centre - spacing * (np.asarray(shape, dtype=np.float64) - 1) / 2.0
    reference = pv.ImageData(dimensions=shape, spacing=(spacing,) * 3, origin=tuple(origin))
    mask = surface.voxelize_binary_mask(reference_volume=reference)
    grid = np.asarray(mask.point_data["mask"]).reshape(shape, order="F").astype(np.uint8)
    if not grid.any():
        raise VolumeReadError(path, "voxelisation left the grid empty; is the mesh a closed surface?")
    return grid
