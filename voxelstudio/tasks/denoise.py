"""Denoise volumes with a trained (or the bundled default) model; record provenance beside every output."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelstudio.core.atomic import check_output_folder
from voxelstudio.core.errors import ModelError, VolumeWriteError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.provenance import denoise_provenance, model_record, sidecar_path, write_sidecar
from voxelstudio.core.resources import BUNDLED_DENOISER, resource_path
from voxelstudio.core.volume import SPACING_GIVEN, Volume
from voxelstudio.io import check_volume_file, load_volume, save_volume
from voxelstudio.io.api import output_path
from voxelstudio.tasks.denoise_checks import check_memory, check_model_spacing

DEFAULT_MODEL = BUNDLED_DENOISER
FORMATS = ("mat", "tif", "npy", "zarr", "ome.tif")
STORE_SUFFIX = ".zarr"
UNCERTAINTY_SUFFIX = "_uncertainty"


def uncertainty_path(source: Path, out_dir: Path, fmt: str) -> Path:
    """Where the test-time-augmentation spread of ``source`` goes: ``out_dir/<name>_uncertainty.<fmt>``."""
    return output_path(source, out_dir, extension(fmt), suffix=UNCERTAINTY_SUFFIX)


@dataclass(frozen=True)
class DenoiseResult:
    """The denoised volume, the TTA standard deviation (when asked for) and how it was made."""

    prediction: Volume
    uncertainty: Volume | None
    provenance: dict[str, Any]


def default_model_path() -> Path:
    """The bundled default denoiser; a ModelError saying what to do when it is not installed."""
    try:
        return resource_path(*DEFAULT_MODEL)
    except FileNotFoundError:
        raise ModelError(
            "/".join(DEFAULT_MODEL),
            "the bundled default model is missing; pass a model file (--model MODEL.keras, "
            "made with 'voxelstudio train-denoiser')",
        ) from None


def _load(model_path: str | Path | None, trusted: bool) -> tuple[Path, Any]:
    from voxelstudio.ml.persistence import load_model

    path = Path(model_path) if model_path is not None else default_model_path()
    loaded = load_model(path, trusted=trusted)
    if loaded.train_config is None:
        raise ModelError(path, "has no VoxelStudio training metadata; use a model saved by voxelstudio")
    return path, loaded


def _denoise_loaded(
    volume: Volume,
    model_path: Path,
    loaded: Any,
    *,
    tta: bool,
    tile_shape: Sequence[int] | None,
    report: ReportFn,
    cancel: CancelToken | None,
) -> DenoiseResult:
    from voxelstudio.ml.inference import predict_volume, runtime_info

    check_model_spacing(volume.spacing, loaded, volume.label)
    check_memory(volume, loaded, tta=tta, tile_shape=tile_shape)
    loaded = loaded.for_spacing(volume.known_spacing)  # its input shift in this scan's voxels
    prediction, uncertainty, tiling = predict_volume(
        loaded, volume.data, tile_shape=tile_shape, tta=tta, report=report, cancel=cancel, spacing=volume.spacing
    )
    provenance = denoise_provenance(volume, model_path, model_record(loaded), tiling, runtime_info())
    denoised = volume.replace(data=prediction, name=f"{volume.name}_denoised", source=None)
    spread = None
    if uncertainty is not None:
        spread = volume.replace(data=uncertainty, name=f"{volume.name}_uncertainty", source=None)
    return DenoiseResult(denoised, spread, provenance)


def denoise_volume(
    volume: Volume,
    *,
    model_path: str | Path | None = None,
    tta: bool = False,
    trusted: bool = False,
    tile_shape: Sequence[int] | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> DenoiseResult:
    """Denoise one volume with ``model_path`` (None: the bundled default model).

    ``tta`` averages the 8 flips/rotations and returns their per-voxel standard deviation as ``uncertainty``.
    ``trusted`` allows model files that contain code. ``tile_shape`` None picks tiles from the memory budget.
    """
    path, loaded = _load(model_path, trusted)
    return _denoise_loaded(volume, path, loaded, tta=tta, tile_shape=tile_shape, report=report, cancel=cancel)


def extension(fmt: str) -> str:
    """The file extension of an output format (``zarr`` is written as OME-Zarr: ``.ome.zarr``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    return "ome.zarr" if fmt == "zarr" else fmt


def is_store(path: Path) -> bool:
    """Whether ``path`` names a Zarr store (denoised block by block when written as Zarr)."""
    return path.suffix.lower() == STORE_SUFFIX


def check_options(
    inputs: Sequence[Path],
    fmt: str,
    *,
    block: Sequence[int] | None,
    scheduler: str | None = None,
    memory_limit: int | None = None,
    tile_shape: Sequence[int] | None = None,
) -> None:
    """ValueError (one line, naming the first input concerned) when ``block`` or ``memory_limit`` meets an input
    that is not denoised block by block, ``memory_limit`` is not positive, or ``scheduler`` is a malformed
    address or ``local:N``; called before any work starts. (``resume`` and ``scheduler`` apply to every input.)"""
    if scheduler is not None:
        from voxelstudio.tasks.file_cluster import check_scheduler

        check_scheduler(scheduler)
    if memory_limit is not None and memory_limit <= 0:
        raise ValueError(f"--memory-limit: expected a positive size such as 1.5GB, got {memory_limit} bytes")
    if memory_limit is not None and tile_shape is not None:
        raise ValueError("--memory-limit and --tile: give one (the limit chooses the tiles)")
    for option, value in (("--block", block), ("--memory-limit", memory_limit)):
        if not value:
            continue
        if fmt != "zarr":
            raise ValueError(f"{option}: only for Zarr stores denoised with --format zarr")
        other = next((p for p in inputs if not is_store(p)), None)
        if other is not None:
            raise ValueError(f"{other}: {option} works on Zarr stores only; denoise this file in another run")


@dataclass(frozen=True)
class FileOptions:
    """How each file is denoised (picklable: it travels to dask workers with whole-file tasks)."""

    fmt: str = "mat"
    tta: bool = False
    trusted: bool = False
    tile_shape: tuple[int, ...] | None = None
    overwrite: bool = False
    block: tuple[int, ...] | None = None
    resume: bool = False
    scheduler: str | None = None
    memory_limit: int | None = None
    voxel_size: tuple[float, float, float] | None = None
    """Replaces the files' voxel sizes (for a model that takes the voxel size, and in the outputs)."""
    variable: str | None = None
    """The array of every file to denoise (``load_volume``'s ``variable``: a name, a level, an axis pick)."""


def finished(out: Path, options: FileOptions, model_sha256: str | None = None) -> bool:
    """Whether ``--resume`` keeps ``out`` as an earlier run finished it and skips the input: the output and its
    sidecar, written last, exist. (What an interrupted run left of an unfinished one is replaced.) ValueError when
    the sidecar names a model other than ``model_sha256``, or another array than ``options.variable``: resuming
    would mix two models' (or arrays') outputs."""
    if not (options.resume and not options.overwrite and out.exists() and sidecar_path(out).exists()):
        return False
    record = _sidecar(sidecar_path(out))
    made_by, made_from = _entry(record, "model", "sha256"), _entry(record, "input", "variable")
    if options.variable is not None and made_from != options.variable:
        raise ValueError(
            f"{out}: made from {'another array' if made_from is None else repr(made_from)}, not "
            f"{options.variable!r}; --resume goes on with the same --variable only: use --overwrite or another "
            "--out-dir"
        )
    made_with_tta = _entry(record, "tiling", "tta")
    if made_with_tta is not None and (made_with_tta == "True") != options.tta:
        raise ValueError(
            f"{out}: made {'with' if made_with_tta == 'True' else 'without'} --tta; --resume goes on with the same "
            "settings only: use --overwrite or another --out-dir"
        )
    made_at = record.get("input", {}).get("spacing") if isinstance(record.get("input"), dict) else None
    if options.voxel_size is not None and made_at is not None and not np.allclose(made_at, options.voxel_size):
        raise ValueError(
            f"{out}: made with the voxel size {made_at}, not --voxel-size {list(options.voxel_size)}; --resume goes "
            "on with the same settings only: use --overwrite or another --out-dir"
        )
    if model_sha256 is not None and made_by is not None and made_by != model_sha256:
        raise ValueError(
            f"{out}: made by another model (sha256 {made_by[:12]}, this one is {model_sha256[:12]}); --resume goes "
            "on with the same model only: use --overwrite or another --out-dir"
        )
    return True


def _sidecar(path: Path) -> Any:
    """A provenance sidecar's record ({} when unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _entry(record: Any, section: str, key: str) -> str | None:
    """``record[section][key]`` as text; None when absent, null or of another shape."""
    try:
        value = record[section][key]
    except (KeyError, TypeError):
        return None
    return None if value is None else str(value)


def _files_written(source: Path, out: Path, fmt: str, tta: bool) -> tuple[Path, ...]:
    """Every file denoising ``source`` into ``out`` writes: the output, its sidecar, and with ``tta`` the
    uncertainty (a sidecar left from another run would otherwise describe the new output, or stop the run after it)."""
    return (out, sidecar_path(out), *([uncertainty_path(source, out.parent, fmt)] if tta else []))


def denoise_files(
    paths: Sequence[str | Path],
    *,
    model_path: str | Path | None = None,
    out_dir: str | Path = "denoised",
    fmt: str = "mat",
    tta: bool = False,
    trusted: bool = False,
    tile_shape: Sequence[int] | None = None,
    overwrite: bool = False,
    block: Sequence[int] | None = None,
    resume: bool = False,
    scheduler: str | None = None,
    memory_limit: int | None = None,
    voxel_size: Sequence[float] | None = None,
    variable: str | None = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """Denoise files into ``out_dir/<name>.<fmt>`` (``<name>``: the file name without its format suffixes, e.g.
    ``scan`` for ``scan.ome.tif``; input variable name and spacing kept) with a JSON sidecar ``<name>.<fmt>.json``
    of provenance; with ``tta`` also ``<name>_uncertainty.<fmt>``. Returns the outputs.

    A Zarr store denoised to ``fmt="zarr"`` goes block by block (:mod:`voxelstudio.tasks.blockwise`); ``block``
    (H, W, Z) applies there and is refused (before any work) when another input is in the list. With ``resume``,
    outputs an earlier run finished are kept and skipped (and a store's interrupted blocks are continued).
    ``scheduler`` (a dask.distributed address, or ``local[:N]``) sends the work to a cluster
    (:mod:`voxelstudio.tasks.denoise_cluster`): small files as whole-file tasks, larger stores block by block (larger
    files of other formats are denoised here). ``memory_limit`` (bytes; block-wise only) sizes the tiles so that
    each process predicting blocks stays under it. ``voxel_size`` (y, x, z µm) replaces the inputs' own (a model
    that takes the voxel size needs the right one; the outputs record it). ``variable`` picks the array of every
    input (``load_volume``'s: a name, an OME-Zarr level, an axis pick such as ``0[c=1]``)."""
    inputs = [Path(p) for p in paths]
    out_dir = Path(out_dir)
    outputs = [output_path(p, out_dir, extension(fmt)) for p in inputs]
    writes = [_files_written(source, out, fmt, tta) for source, out in zip(inputs, outputs, strict=True)]
    first_with: dict[Path, int] = {}
    for index, files in enumerate(writes):
        for path in files:
            first = first_with.setdefault(path, index)
            if first != index:
                raise ValueError(
                    f"{inputs[first]} and {inputs[index]} would both write {path} (outputs are named after the "
                    "input's file name)"
                )
    check_options(inputs, fmt, block=block, scheduler=scheduler, memory_limit=memory_limit, tile_shape=tile_shape)
    for source in inputs:  # every header before the first output: a bad file late in the list stops nothing midway
        check_volume_file(source, variable)
    tile = None if tile_shape is None else tuple(int(t) for t in tile_shape)
    shape = None if block is None else tuple(int(b) for b in block)
    spacing = None if voxel_size is None else Volume(np.zeros((1, 1, 1), np.float32), voxel_size).spacing
    options = FileOptions(fmt, tta, trusted, tile, overwrite, shape, resume, scheduler, memory_limit, spacing, variable)
    check_output_folder(out_dir)
    if not (overwrite or resume):  # an output already there stops the run before any prediction, not after
        taken = next((path for files in writes for path in files if path.exists()), None)
        if taken is not None:
            raise VolumeWriteError(taken, "already exists; pass --overwrite to replace it")
    model, loaded = _load(model_path, trusted)
    if fmt == "npy":  # said once for the run, before the first output
        warnings.warn(
            "--format npy cannot store the voxel size, so the outputs lose the inputs'; mat, tif, ome.tif and zarr "
            "keep it",
            stacklevel=2,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    if scheduler is not None:
        from voxelstudio.tasks.denoise_cluster import denoise_on_cluster

        return denoise_on_cluster(inputs, outputs, model, loaded, options, report, cancel)
    written: list[Path] = []
    for index, (source, out) in enumerate(zip(inputs, outputs, strict=True)):
        if cancel is not None:
            cancel.raise_if_cancelled("denoising")
        if finished(out, options, loaded.sha256):  # finished by an earlier run: go on to the next input
            report(Progress(index + 1, len(inputs), f"kept finished {out.name}"))
            written.append(out)
            continue

        file_report = within(report, index, len(inputs), source.name)
        written.append(denoise_file(source, out, model, loaded, options, report=file_report, cancel=cancel))
        report(Progress(index + 1, len(inputs), f"wrote {out.name}"))
    return written


def within(report: ReportFn, before: int, files: int, name: str) -> ReportFn:
    """A report of one file's progress as a share of ``files``, ``before`` of them done; a step of unknown length
    (a store's pyramid levels after its blocks) keeps the share reached instead of dropping back to the start."""
    reached = 0.0

    def file_report(p: Progress) -> None:
        nonlocal reached
        reached = reached if p.fraction is None else p.fraction
        report(Progress(before + reached, files, f"{name}: {p.message}" if p.message else name, p.values))

    return file_report


def denoise_file(
    source: Path,
    out: Path,
    model: Path,
    loaded: Any,
    options: FileOptions,
    *,
    client: Any = None,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> Path:
    """Denoise one file into ``out`` (and its sidecar, and the uncertainty with ``options.tta``), each written
    atomically; a Zarr store to ``zarr`` block by block, on ``client`` (a dask Client) when given."""
    if options.fmt == "zarr" and is_store(source):
        return _denoise_store(source, out, model, loaded, options, client, report, cancel)
    volume = load_volume(source, options.variable)
    if options.voxel_size is not None:
        volume = volume.replace(spacing=options.voxel_size, metadata={SPACING_GIVEN: True})  # 1 µm is 1 µm now
    result = _denoise_loaded(
        volume, model, loaded, tta=options.tta, tile_shape=options.tile_shape, report=report, cancel=cancel
    )
    provenance = {**result.provenance, "output": str(out.resolve())}
    if options.variable is not None:  # as given: a store's axis pick is not the name it loads under
        provenance["input"] = {**provenance["input"], "variable": options.variable}
    replace = options.overwrite or options.resume  # resumed: anything here is an unfinished run's (see finished)
    save_volume(result.prediction, out, overwrite=replace)
    if result.uncertainty is not None:
        spread_path = uncertainty_path(source, out.parent, options.fmt)
        save_volume(result.uncertainty, spread_path, overwrite=replace)
        provenance["uncertainty_output"] = str(spread_path.resolve())
    write_sidecar(out, provenance, overwrite=replace)
    return out


def _denoise_store(
    source: Path,
    out: Path,
    model: Path,
    loaded: Any,
    options: FileOptions,
    client: Any,
    report: ReportFn,
    cancel: CancelToken | None,
) -> Path:
    from voxelstudio.tasks.blockwise import denoise_store

    spread = uncertainty_path(source, out.parent, "zarr") if options.tta else None
    result = denoise_store(
        source, out, model_path=model, loaded=loaded, trusted=options.trusted, block=options.block,
        tile_shape=options.tile_shape, resume=options.resume,
        overwrite=options.overwrite or (options.resume and out.exists()),
        scheduler=options.scheduler if client is not None else None, client=client, uncertainty_out=spread,
        memory_limit=options.memory_limit, voxel_size=options.voxel_size, variable=options.variable,
        report=report, cancel=cancel,
    )  # fmt: skip
    write_sidecar(out, {**result.provenance, "output": str(out.resolve())}, overwrite=True)
    return out
