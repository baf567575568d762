"""Write a simulated training set: OUTDIR/raw/NNN.mat, OUTDIR/target/NNN.mat and OUTDIR/params.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio import __version__
from voxelstudio.core.atomic import check_output_folder, write_atomically
from voxelstudio.core.errors import VolumeWriteError
from voxelstudio.core.memory import check_available
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume
from voxelstudio.sim import SimParams, simulate_pair
from voxelstudio.sim.jitter import jitter_params
from voxelstudio.sim.measured_psf import simulate_pair_with_psf
from voxelstudio.sim.params import validate_shape

VARIABLE = "voxel"
"""MATLAB variable name of every written volume (the original code's)."""
PARAMS_FILE = "params.json"
BYTES_PER_VOXEL = 160
"""Peak memory of simulating one pair, per voxel (measured 86-138 B for 128x128x32 to 512x512x32, plus margin)."""


def pair_seed(seed: int, index: int) -> int:
    """The simulate_pair seed of pair ``index``: independent streams that do not depend on the pair count."""
    return int(np.random.SeedSequence(seed, spawn_key=(index, 0)).generate_state(1, dtype=np.uint64)[0])


def pair_params(seed: int, index: int, params: SimParams, randomize: bool, jitter: float = 0.0) -> SimParams:
    """``params`` itself, with ``randomize`` every parameter drawn from its range, or with ``jitter`` drawn around
    ``params`` (:func:`voxelstudio.sim.jitter.jitter_params`), for pair ``index``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, 1)))
    if randomize:
        return SimParams.random(rng)
    return jitter_params(params, rng, jitter) if jitter > 0 else params


def _check_arguments(count: int, seed: int, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return validate_shape(shape)


def check_memory(shape: tuple[int, int, int]) -> None:
    """VoxelStudioError when simulating one pair of ``shape`` needs more memory than is available."""
    needed = BYTES_PER_VOXEL * float(np.prod(shape, dtype=np.float64))
    size = "x".join(str(n) for n in shape)
    check_available(needed, f"simulating a {size} volume", "simulate a smaller --shape")


def _write_json(path: Path, content: dict[str, Any]) -> None:
    text = json.dumps(content, indent=2) + "\n"
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), overwrite=True)


_PAIR_NAME = re.compile(r"\d+\.mat")


def earlier_data_set(outdir: Path) -> list[Path]:
    """The files of a data set ``simulate_dataset`` wrote into ``outdir`` before: its params.json and its numbered
    pairs (other files are left alone)."""
    found = [outdir / PARAMS_FILE] if (outdir / PARAMS_FILE).is_file() else []
    for folder in (outdir / "raw", outdir / "target"):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.is_file() and _PAIR_NAME.fullmatch(p.name))
    return found


def simulate_dataset(
    outdir: str | Path,
    *,
    count: int,
    seed: int = 0,
    shape: tuple[int, int, int] = (128, 128, 32),
    params: SimParams | None = None,
    randomize: bool = False,
    jitter: float = 0.0,
    psf: np.ndarray | None = None,
    overwrite: bool = False,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> list[tuple[Path, Path]]:
    """Simulate ``count`` (raw, target) pairs and write them as ``.mat`` files (variable ``voxel``, voxel size
    stored); returns the (raw, target) paths.

    ``jitter`` draws each pair's parameters around ``params``; ``psf`` (a measured PSF stack on the volumes' grid)
    replaces the Gibson-Lanni PSF. ``params.json`` records the seed, shape, version and each pair's parameters and
    seed, and is rewritten after every pair, so a cancelled run still describes the pairs it wrote. Cancellation is
    checked between pairs. The folders are made once the first pair is simulated: a run that fails before leaves
    none behind. A folder that holds a data set already is refused unless ``overwrite``, which removes that set
    (:func:`earlier_data_set`) once the first new pair is made.
    """
    shape = _check_arguments(count, seed, shape)
    check_memory(shape)
    params = SimParams() if params is None else params
    if not isinstance(params, SimParams):
        raise ValueError(f"params must be SimParams, got {type(params).__name__}")
    outdir = check_output_folder(outdir)
    raw_dir, target_dir = outdir / "raw", outdir / "target"
    for folder in (raw_dir, target_dir):  # before the first pair: nothing is written when one cannot be
        check_output_folder(folder)
    if (outdir / "params.json").is_dir():
        raise VolumeWriteError(outdir / "params.json", "is a folder, not a file")
    earlier = earlier_data_set(outdir)
    if earlier and not overwrite:  # a second run's pairs would join the first's (the same seeds: duplicates)
        raise VolumeWriteError(
            outdir, "already holds a simulated data set; pass --overwrite to replace it, or choose another folder"
        )

    width = max(3, len(str(count)))
    record: dict[str, Any] = {
        "generator": "voxelstudio.sim.simulate_pair",
        "version": __version__,
        "seed": int(seed),
        "shape": list(shape),
        "randomize": bool(randomize),
        "jitter": float(jitter),
        "measured_psf": psf is not None,
        "variable": VARIABLE,
        "pairs": [],
    }
    written: list[tuple[Path, Path]] = []
    report(Progress(0, count, "simulating"))
    for index in range(count):
        if cancel is not None:
            cancel.raise_if_cancelled("simulation")
        this_params = pair_params(seed, index, params, randomize, jitter)
        this_seed = pair_seed(seed, index)
        if psf is None:
            raw, target = simulate_pair(shape, this_params, seed=this_seed)
        else:
            raw, target = simulate_pair_with_psf(shape, this_params, psf, seed=this_seed)
        if index == 0:  # the first pair is made: now the earlier set goes, whole, so none of it is mixed in
            for path in earlier:
                path.unlink(missing_ok=True)
        raw_dir.mkdir(parents=True, exist_ok=True)
        target_dir.mkdir(parents=True, exist_ok=True)
        name = f"{index + 1:0{width}d}"
        spacing = this_params.optics.voxel_size_um
        raw_path = save_volume(
            Volume(raw, spacing, name=name), raw_dir / f"{name}.mat", variable=VARIABLE, overwrite=overwrite
        )
        target_path = save_volume(
            Volume(target, spacing, name=name), target_dir / f"{name}.mat", variable=VARIABLE, overwrite=overwrite
        )
        written.append((Path(raw_path), Path(target_path)))
        record["pairs"].append(
            {
                "raw": f"raw/{name}.mat",
                "target": f"target/{name}.mat",
                "seed": this_seed,
                "spacing_um": list(spacing),
                "params": this_params.to_dict(),
            }
        )
        _write_json(outdir / PARAMS_FILE, record)
        report(Progress(index + 1, count, f"pair {index + 1}/{count}"))
    return written
