"""Folder data sets of voxel grids for classification: one sub-folder per class of .mat (variable ``voxel``),
.npy/.npz or .tif grids, read with :func:`voxelstudio.io.load_volume`; meshes (.stl/.obj/.ply) are voxelised.

Grids become uint8 occupancy (value >= half the maximum when values exceed 1, else >= 0.5). Grids of another size
are placed in the model's grid as any volume is (:func:`~voxelstudio.tasks.volume_grid.place_volume`: one scale for
every axis, centred), with one warning naming them. ``strict`` loading
(training data) refuses grids with more than two distinct values and data sets whose grids differ in size.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxelstudio.core.errors import VolumeReadError, VolumeWriteError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume
from voxelstudio.io import SUPPORTED_SUFFIXES, load_volume
from voxelstudio.tasks.volume_grid import place_volume

MESH_SUFFIXES = (".stl", ".obj", ".ply")
GRID_SUFFIXES = tuple(SUPPORTED_SUFFIXES)
MAX_ASPECT = 2.0
"""Grids whose sides differ by more than this factor are refused rather than distorted by resampling."""


@dataclass(frozen=True)
class GridDataset:
    """Occupancy grids (N, H, W, Z) uint8 with labels (N,) indexing ``classes``, and the file of each grid."""

    grids: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    files: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.grids.shape[1:4])  # type: ignore[return-value]

    def counts(self) -> dict[str, int]:
        """Grids per class."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts, strict=True)}

    def subset(self, indices: np.ndarray) -> GridDataset:
        files = tuple(self.files[i] for i in indices) if self.files else ()
        return GridDataset(self.grids[indices], self.labels[indices], self.classes, files)


def occupancy(data: np.ndarray) -> np.ndarray:
    """Boolean occupancy of a grid: >= 0.5, or >= half the maximum when values exceed 1 (e.g. 0/255)."""
    data = np.asarray(data, dtype=np.float32)
    peak = float(np.nanmax(data)) if data.size else 0.0
    return data >= (0.5 * peak if peak > 1.0 else 0.5)


def fit_grid(grid: np.ndarray, shape: Sequence[int], *, path: Path | str | None = None) -> tuple[np.ndarray, bool]:
    """(uint8 occupancy of ``shape``, whether it was resampled). Raises VolumeReadError for grids that cannot be
    resampled without distorting them (a side under 4 voxels, or sides differing by more than MAX_ASPECT)."""
    occupied = occupancy(grid)
    shape = tuple(int(n) for n in shape)
    if occupied.shape == shape:
        return occupied.astype(np.uint8), False
    sides = np.asarray(occupied.shape, dtype=np.float64)
    if occupied.ndim != 3 or sides.min() < 4 or sides.max() / sides.min() > MAX_ASPECT:
        size = "x".join(str(n) for n in occupied.shape)
        target = "x".join(str(n) for n in shape)
        raise VolumeReadError(
            path, f"grid of shape {size} cannot be resampled to {target} (sides must be >= 4 and within a factor 2)"
        )
    # as "Classify shown volume" places any volume: one factor for every axis (a 48x48x32 grid's cube stays a cube),
    # averaging the voxels that become one, centred, thresholded halfway
    return place_volume(Volume(occupied.astype(np.float32)), shape).grid, True


def check_binary(data: np.ndarray, path: Path | str | None) -> None:
    """VolumeReadError unless ``data`` holds at most two distinct values (0/1, 0/255, ...)."""
    values = np.unique(np.asarray(data))
    if len(values) > 2:
        shown = ", ".join(f"{v:g}" for v in values[:3])
        raise VolumeReadError(path, f"grid holds {len(values)} distinct values ({shown}, ...); a classifier needs "
                                    "binary occupancy grids (two values, e.g. 0/1): threshold it first")  # fmt: skip


def read_grid(path: str | Path, shape: Sequence[int], *, strict: bool = False) -> tuple[np.ndarray, tuple[int, ...]]:
    """(uint8 occupancy grid of ``shape``, the file's own shape); meshes are voxelised straight to ``shape``.
    ``strict`` refuses grids that are not binary."""
    path = Path(path)
    if path.suffix.lower() in MESH_SUFFIXES:
        from voxelstudio.render.voxelize import voxelize_mesh

        return voxelize_mesh(path, shape), tuple(int(n) for n in shape)
    data = load_volume(path).data
    if strict:
        check_binary(data, path)
    return fit_grid(data, shape, path=path)[0], tuple(int(n) for n in np.shape(data))


def load_grid(path: str | Path, shape: Sequence[int]) -> tuple[np.ndarray, bool]:
    """One file as a uint8 occupancy grid of ``shape`` (meshes are voxelised) and whether it was resampled."""
    grid, native = read_grid(path, shape)
    return grid, native != tuple(int(n) for n in shape)


def _is_grid_file(path: Path, suffixes: Sequence[str]) -> bool:
    """A grid or mesh file by its suffix, not hidden; a Zarr store (a folder) counts as a file."""
    kind_ok = path.is_file() or (path.is_dir() and path.suffix.lower() == ".zarr")
    return kind_ok and path.suffix.lower() in suffixes and not path.name.startswith(".")


def class_folders(folder: str | Path, *, min_classes: int = 2) -> list[tuple[str, list[Path]]]:
    """(class name, sorted grid files) per sub-folder of ``folder``; clear errors for unusable layouts (fewer than
    ``min_classes`` classes among them: training needs two, testing a model may look at one)."""
    folder = Path(folder)
    if not folder.is_dir():
        problem = "is a file, not a folder of class folders" if folder.exists() else "no such folder"
        raise FileNotFoundError(f"{folder}: {problem}")
    suffixes = GRID_SUFFIXES + MESH_SUFFIXES
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.iterdir() if _is_grid_file(p, suffixes))
        if not files:
            raise ValueError(f"{sub}: class folder holds no grid files ({', '.join(suffixes)})")
        found.append((sub.name, files))
    if not found:
        raise ValueError(f"{folder}: no class sub-folders; a data set has one folder of grid files per class")
    if len(found) < min_classes:
        raise ValueError(f"{folder}: only one class ({found[0][0]}); a classifier needs at least two")
    return found


def load_class_folder(
    folder: str | Path,
    *,
    grid_shape: Sequence[int] = (32, 32, 32),
    classes: Sequence[str] | None = None,
    strict: bool = False,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> GridDataset:
    """Load a class-per-folder data set as ``grid_shape`` occupancy grids.

    With ``classes`` (a model's class names), labels index those names, unknown folders raise ValueError and one
    class folder is enough (a test set of one class).
    ``strict`` (training data): grids must be binary and all of one size (then resampled together if need be);
    otherwise a VolumeReadError / ValueError names the file.
    """
    layout = class_folders(folder, min_classes=1 if classes is not None else 2)
    names = tuple(classes) if classes is not None else tuple(name for name, _ in layout)
    unknown = [name for name, _ in layout if name not in names]
    if unknown:
        raise ValueError(f"{folder}: classes {', '.join(unknown)} are not among the model's ({', '.join(names)})")
    total = sum(len(files) for _, files in layout)
    grids = np.zeros((total, *grid_shape), dtype=np.uint8)
    labels, paths, resampled = np.zeros(total, dtype=np.int64), [], []
    first: tuple[Path, tuple[int, ...]] | None = None
    for name, files in layout:
        for path in files:
            if cancel is not None:
                cancel.raise_if_cancelled("loading the data set")
            index = len(paths)
            grids[index], native = read_grid(path, grid_shape, strict=strict)
            if strict and path.suffix.lower() not in MESH_SUFFIXES:
                first = first or (path, native)
                if native != first[1]:
                    size, other = "x".join(map(str, native)), "x".join(map(str, first[1]))
                    raise ValueError(f"{path}: grid is {size} but {first[0].name} is {other}; a data set needs "
                                     "grids of one size")  # fmt: skip
            labels[index] = names.index(name)
            paths.append(path)
            if native != tuple(grid_shape):
                resampled.append(path)
            report(Progress(index + 1, total, "loading", {"file": path.name}))
    if strict and not grids.any():
        raise ValueError(f"{folder}: every grid is empty (no occupied voxel); there is nothing to learn from")
    if resampled:
        target = "x".join(str(n) for n in grid_shape)
        message = f"{len(resampled)} grid(s) resampled to {target}, e.g. {resampled[0]}"
        warnings.warn(message, stacklevel=2)
        report(Progress(total, total, message))
    return GridDataset(grids, labels, names, tuple(paths))


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int = 0) -> tuple[np.ndarray, ...]:
    """Index arrays (rest, part_1, ..., part_k) with ``fractions[i]`` of every class in part i.

    Per class, ``round(n * f)`` samples go to each part, but each part gets at least one sample of a class with
    enough samples to leave one for training. Deterministic for a given ``seed``; indices are sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        start = 0
        for i, fraction in enumerate(fractions):
            want = round(len(members) * fraction)
            if fraction > 0 and want == 0 and len(members) - start > 1:
                want = 1
            want = min(want, max(len(members) - start - 1, 0))
            parts[i + 1].append(members[start : start + want])
            start += want
        parts[0].append(members[start:])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts)


SHAPE_FORMATS = ("npy", "mat")


def write_shapes_dataset(
    outdir: str | Path,
    *,
    per_class: int = 100,
    seed: int = 0,
    size: int = 32,
    fmt: str = "npy",
    overwrite: bool = False,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """Write the procedural 10-class shapes as OUTDIR/<class>/<class>_NNNN.<fmt>: uint8 .npy, or .mat with the
    occupancy in variable ``voxel``. Returns the written paths."""
    from voxelstudio.core.atomic import check_output_folder, write_atomically
    from voxelstudio.core.volume import Volume
    from voxelstudio.io import save_volume
    from voxelstudio.sim.shapes import SHAPE_CLASSES, generate_shapes

    if fmt not in SHAPE_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(SHAPE_FORMATS)}")
    if per_class < 1:
        raise ValueError(f"per-class count must be at least 1, got {per_class}")
    outdir = check_output_folder(outdir)
    earlier = [
        path
        for name in SHAPE_CLASSES
        if (outdir / name).is_dir()
        for path in sorted((outdir / name).iterdir())
        if re.fullmatch(rf"{re.escape(name)}_\d{{4,}}\.(npy|mat)", path.name)
    ]
    if earlier and not overwrite:  # more grids beside them (another format, another seed) would mix two sets
        raise VolumeWriteError(outdir, "already holds a shapes data set; pass --overwrite to replace it")
    total, written = per_class * len(SHAPE_CLASSES), []
    for name, index, grid in generate_shapes(per_class, seed=seed, size=size):
        if cancel is not None:
            cancel.raise_if_cancelled("writing the shapes")
        for path in earlier:  # the whole earlier set goes, once there is a first new grid to write
            path.unlink(missing_ok=True)
        earlier = []
        path = outdir / name / f"{name}_{index:04d}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "npy":

            def write(target: Path, grid: np.ndarray = grid) -> None:
                with open(target, "wb") as handle:
                    np.save(handle, grid, allow_pickle=False)

            write_atomically(path, write, overwrite=overwrite)
        else:
            volume = Volume(grid.astype(np.float32), name=path.stem, metadata={"variable": "voxel"})
            save_volume(volume, path, variable="voxel", overwrite=overwrite)
        written.append(path)
        report(Progress(len(written), total, "writing shapes", {"class": name}))
    return written
