"""Denoise volumes with a trained (or the bundled default) model; record provenance beside every output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from voxelstudio import __version__
from voxelstudio.core.errors import ModelError, VolumeWriteError, VoxelStudioError
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.provenance import denoise_provenance, write_sidecar
from voxelstudio.core.resources import resource_path
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.io.api import volume_name

DEFAULT_MODEL = ("models", "denoiser_default.keras")
FORMATS = ("mat", "tif", "npy", "zarr", "ome.tif")
STORE_SUFFIX = ".zarr"
GIB = float(1 << 30)


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


def check_memory(volume: Volume, loaded: Any, *, tta: bool, tile_shape: Sequence[int] | None = None) -> int:
    """Bytes the prediction needs beyond the loaded volume; VoxelStudioError when more than is available."""
    from voxelstudio.ml.inference import plan_prediction

    plan = plan_prediction(loaded.train_config.model, volume.shape, tile_shape=tile_shape, tta=tta)
    needed = plan.host_bytes + plan.tile_bytes
    available = psutil.virtual_memory().available
    if needed > available:
        raise VoxelStudioError(
            f"{_label(volume)}: denoising {volume.shape} needs about {needed / GIB:.1f} GiB of memory but only "
            f"{available / GIB:.1f} GiB is available; close other programs, crop the volume or give smaller --tile"
        )
    return needed


def _label(volume: Volume) -> str:
    return str(volume.source) if volume.source is not None else (volume.name or "volume")


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

    check_memory(volume, loaded, tta=tta, tile_shape=tile_shape)
    prediction, uncertainty, tiling = predict_volume(
        loaded, volume.data, tile_shape=tile_shape, tta=tta, report=report, cancel=cancel
    )
    model = {"sha256": loaded.sha256, "saved_at": loaded.metadata.get("saved_at"),
             "train_config": loaded.train_config.to_dict(), "normalizer": loaded.normalizer.to_dict()}  # fmt: skip
    provenance = denoise_provenance(volume, model_path, model, tiling, runtime_info())
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


def output_path(input_path: Path, out_dir: Path, fmt: str) -> Path:
    """``out_dir/<input stem>.<fmt>``; VolumeWriteError when that would be the input file itself."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    out = out_dir / f"{volume_name(input_path)}.{'ome.zarr' if fmt == 'zarr' else fmt}"
    if out.resolve() == input_path.resolve():
        raise VolumeWriteError(out, "is the input file; choose another output folder or format")
    return out


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
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """Denoise files into ``out_dir/<stem>.<fmt>`` (input variable name and spacing kept) with a JSON sidecar
    ``<stem>.<fmt>.json`` of provenance; with ``tta`` also ``<stem>_uncertainty.<fmt>``. Returns the outputs.

    A Zarr store denoised to ``fmt="zarr"`` goes block by block (:mod:`voxelstudio.tasks.blockwise`): ``block``
    (H, W, Z), ``resume`` and ``scheduler`` (a dask.distributed address) apply there."""
    inputs = [Path(p) for p in paths]
    out_dir = Path(out_dir)
    outputs = [output_path(p, out_dir, fmt) for p in inputs]
    if len(set(outputs)) != len(outputs):
        raise ValueError("two inputs share a file name; their outputs would collide in one folder")
    model, loaded = _load(model_path, trusted)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, (source, out) in enumerate(zip(inputs, outputs, strict=True)):
        if cancel is not None:
            cancel.raise_if_cancelled("denoising")

        def file_report(p: Progress, index: int = index, name: str = source.name) -> None:
            done = index + (p.fraction or 0.0)
            report(Progress(done, len(inputs), f"{name}: {p.message}" if p.message else name, p.values))

        if fmt == "zarr" and source.suffix.lower() == STORE_SUFFIX:
            written.append(_denoise_store(source, out, model, trusted, tta, tile_shape, overwrite, block, resume,
                                          scheduler, file_report, cancel))  # fmt: skip
            report(Progress(index + 1, len(inputs), f"wrote {out.name}"))
            continue
        if scheduler is not None or resume:
            raise ValueError("--scheduler and --resume apply to Zarr inputs denoised with --format zarr")
        volume = load_volume(source)
        result = _denoise_loaded(
            volume, model, loaded, tta=tta, tile_shape=tile_shape, report=file_report, cancel=cancel
        )
        provenance = {**result.provenance, "output": str(out.resolve())}
        save_volume(result.prediction, out, overwrite=overwrite)
        if result.uncertainty is not None:
            spread_path = out.with_name(f"{source.stem}_uncertainty.{fmt}")
            save_volume(result.uncertainty, spread_path, overwrite=overwrite)
            provenance["uncertainty_output"] = str(spread_path.resolve())
        write_sidecar(out, provenance, overwrite=overwrite)
        written.append(out)
        report(Progress(index + 1, len(inputs), f"wrote {out.name}"))
    return written


def _denoise_store(
    source: Path,
    out: Path,
    model: Path,
    trusted: bool,
    tta: bool,
    tile_shape: Sequence[int] | None,
    overwrite: bool,
    block: Sequence[int] | None,
    resume: bool,
    scheduler: str | None,
    report: ReportFn,
    cancel: CancelToken | None,
) -> Path:
    from voxelstudio.ml.inference import runtime_info
    from voxelstudio.ml.persistence import file_sha256
    from voxelstudio.tasks.blockwise import denoise_store

    if tta:
        raise ValueError("--tta is not available for block-wise (Zarr to Zarr) denoising")
    result = denoise_store(
        source, out, model_path=model, trusted=trusted, block=block, tile_shape=tile_shape, resume=resume,
        overwrite=overwrite, scheduler=scheduler, report=report, cancel=cancel,
    )  # fmt: skip
    runtime = runtime_info()
    provenance = {
        **result.provenance,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": str(model.resolve()), "sha256": file_sha256(model)},
        "versions": {"voxelstudio": __version__, **runtime["versions"]},
        "output": str(out.resolve()),
    }
    write_sidecar(out, provenance, overwrite=True)
    return out
