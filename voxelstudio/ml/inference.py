"""Whole-volume prediction with a trained denoiser: normalise, pad, tile, blend, de-normalise; optional TTA.

Tiles overlap by twice the network's one-sided reach plus a blending band, and start on the pooling grid, so the
tiled result equals the untiled one (except with group/instance normalisation, whose statistics are per tile).
On out-of-memory the tile is halved along its largest axis and the prediction retried.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np
import psutil

from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.core.subvoxel import translate
from voxelstudio.ml import backend
from voxelstudio.ml.config import DenoiserConfig
from voxelstudio.ml.denoisers import pad_to_multiple, receptive_field, required_multiple
from voxelstudio.ml.device import describe_device
from voxelstudio.ml.spacing import conditioning, with_features
from voxelstudio.ml.tiling import (
    choose_tile_shape,
    estimate_memory,
    halve_tile,
    plan_tiles,
    predict_tiled,
    round_up,
)

Shape3 = tuple[int, int, int]
BLEND = 8
"""Width of the smooth blending band between the discarded margins of two neighbouring tiles."""
MAX_TILE_BYTES = 1 << 30
"""Tile memory budget cap (the automatic budget is a quarter of the available RAM, at most this). Larger tiles
are no faster on a CPU and a GPU rarely has more to spare; a 1024x1024x128 volume then stays within 3 GB."""
TTA_TRANSFORMS: tuple[tuple[int, bool], ...] = tuple((turns, flip) for flip in (False, True) for turns in range(4))
"""Test-time augmentation: (quarter turns in the y-x plane, flip along z); each is inverted exactly."""


def forward_transform(x: np.ndarray, turns: int, flip_z: bool) -> np.ndarray:
    if flip_z:
        x = x[:, :, ::-1]
    return np.ascontiguousarray(np.rot90(x, turns, axes=(0, 1)))


def inverse_transform(y: np.ndarray, turns: int, flip_z: bool) -> np.ndarray:
    y = np.rot90(y, -turns, axes=(0, 1))
    return np.ascontiguousarray(y[:, :, ::-1] if flip_z else y)


def tile_margin(cfg: DenoiserConfig) -> Shape3:
    """Voxels to discard at an inner tile edge: the network's largest one-sided reach per axis.

    Of the receptive field (minus the centre), the pooling/upsampling part (2 * (multiple - 1)) may lie wholly on
    one side; the convolution part splits as Keras' 'same' padding does, k // 2 of every k - 1 after the centre.
    """
    margins = []
    for field, multiple, kernel in zip(receptive_field(cfg), required_multiple(cfg), cfg.kernel, strict=True):
        pooling = 2 * (multiple - 1)
        conv = field - 1 - pooling
        reach = math.ceil(conv * (kernel // 2) / (kernel - 1)) if kernel > 1 else 0
        margins.append(reach + pooling)
    return tuple(margins)  # type: ignore[return-value]


@dataclass(frozen=True)
class PredictionPlan:
    """How a volume will be predicted: padded shape, tiling geometry and memory estimates (bytes)."""

    padded_shape: Shape3
    tile_shape: Shape3
    overlap: Shape3
    margin: Shape3
    multiple: Shape3
    tile_bytes: int
    host_bytes: int


def _minimum_tile(overlap: Sequence[int], multiple: Sequence[int], padded: Sequence[int]) -> Shape3:
    """Smallest useful tile: the overlap plus one stride of ``multiple`` (or the whole axis)."""
    return tuple(min(round_up(o + m, m), p) for o, m, p in zip(overlap, multiple, padded, strict=True))  # type: ignore[return-value]


def default_tile_budget() -> int:
    """A quarter of the available RAM, capped at MAX_TILE_BYTES (GPU memory errors shrink tiles on retry)."""
    return int(min(psutil.virtual_memory().available / 4, MAX_TILE_BYTES))


def plan_prediction(
    cfg: DenoiserConfig,
    shape: Sequence[int],
    *,
    tile_shape: Sequence[int] | None = None,
    tta: bool = False,
    budget_bytes: int | None = None,
) -> PredictionPlan:
    """Choose the tiling for a volume of ``shape`` (automatic tile size from the memory budget when None)."""
    multiple = required_multiple(cfg)
    padded = tuple(round_up(int(s), m) for s, m in zip(shape, multiple, strict=True))
    margin = tile_margin(cfg)
    overlap = tuple(2 * g + BLEND for g in margin)
    minimum = _minimum_tile(overlap, multiple, padded)
    if tile_shape is None:
        budget = default_tile_budget() if budget_bytes is None else budget_bytes
        tile = choose_tile_shape(padded, cfg, budget, minimum=minimum, overlap=overlap, multiple=multiple)
    else:
        sizes = zip(tile_shape, minimum, multiple, padded, strict=True)
        tile = tuple(min(round_up(max(int(t), lo), m), p) for t, lo, m, p in sizes)
    voxels = math.prod(padded)
    # a padded copy of the input (when padding is needed) and the float32 output; TTA adds the normalised and the
    # rotated input, the de-normalised prediction, its difference to the running mean, the mean and M2
    host = voxels * 4 * (2 + (6 if tta else 0))
    return PredictionPlan(padded, tile, overlap, margin, multiple, estimate_memory(tile, cfg), host)  # type: ignore[arg-type]


class _RetracingNotice(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning: ``predict_on_batch`` traces once per new tile
    shape on purpose (volumes of several shapes in one session, validation volumes during training)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_RetracingNotice())


def model_predict_fn(model: keras.Model, spacing: Sequence[float] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A tile function for :func:`predict_tiled`: (H, W, Z) float32 -> (H, W, Z) network output.

    ``spacing`` is the volume's voxel size (y, x, z µm), which a spacing-conditioned model needs (ValueError
    without it) and other models ignore. ``predict_on_batch`` runs a traced graph (once per tile shape), which frees
    intermediate feature maps as it goes: a 128^3 tile of the default U-Net peaks at about half the memory of an
    eager ``model(x)`` call, and is faster.
    """
    features = conditioning(model, spacing)

    def predict(tile: np.ndarray) -> np.ndarray:
        batch = np.asarray(tile, dtype=np.float32)[None, ..., None]
        return np.asarray(model.predict_on_batch(with_features(batch, features)))[0, ..., 0]

    return predict


def normalized_predict_fn(
    model: keras.Model, normalizer: Any, value_range: tuple[float, float], spacing: Sequence[float] | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """A tile function that normalises a raw tile with the whole volume's ``value_range``, runs the network and maps
    the output back to the target's units. Both maps are affine and the blending weights sum to one, so this equals
    normalising the whole volume first, without a normalised copy of it in memory."""
    network = model_predict_fn(model, spacing)

    def predict(tile: np.ndarray) -> np.ndarray:
        return normalizer.after(network(normalizer.before(tile, value_range)), copy=False)

    return predict


def predict_unit(
    model: keras.Model,
    cfg: DenoiserConfig,
    x: np.ndarray,
    *,
    plan: PredictionPlan,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
    turns: int = 0,
    tile_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    spacing: Sequence[float] | None = None,
) -> tuple[np.ndarray, PredictionPlan, int]:
    """Network output for a normalised volume ``x`` (already transformed), retrying with smaller tiles on OOM.

    ``tile_fn`` replaces the plain network call per tile (see :func:`normalized_predict_fn`); ``spacing`` is the
    voxel size of ``x`` as the network sees it (a spacing-conditioned model needs it).
    Returns the prediction, the plan actually used, and the number of out-of-memory retries.
    """
    padded, crop = pad_to_multiple(x, plan.multiple)
    swap = turns % 2 == 1
    retries = 0
    tile_fn = tile_fn or model_predict_fn(model, spacing)
    while True:
        tile = plan.tile_shape
        if swap:  # the same memory on the turned volume; the overlap stays the network's (anisotropic kernels)
            minimum = _minimum_tile(plan.overlap, plan.multiple, padded.shape)
            tile = tuple(max(t, m) for t, m in zip((tile[1], tile[0], tile[2]), minimum, strict=True))
        try:
            out = predict_tiled(
                tile_fn,
                padded,
                tile_shape=tile,
                overlap=plan.overlap,
                margin=plan.margin,
                multiple=plan.multiple,
                report=report,
                cancel=cancel,
            )
            return out[crop], plan, retries
        except Exception as exc:
            if not backend.is_out_of_memory(exc):
                raise
            minimum = _minimum_tile(plan.overlap, plan.multiple, plan.padded_shape)
            smaller = halve_tile(plan.tile_shape, minimum=minimum, multiple=plan.multiple)
            if smaller is None:
                raise MemoryError(f"out of memory even with tiles of {plan.tile_shape} voxels") from exc
            plan = replace(plan, tile_shape=smaller, tile_bytes=estimate_memory(smaller, cfg))
            retries += 1
            report(Progress(0, None, f"out of memory; retrying with tiles of {smaller}"))


def predict_volume(
    loaded: Any,
    array: np.ndarray,
    *,
    tile_shape: Sequence[int] | None = None,
    tta: bool = False,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
    spacing: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Denoise ``array`` (H, W, Z) with a loaded model (``persistence.LoadedModel``); ``spacing`` is its voxel size
    (y, x, z µm), which a spacing-conditioned model needs. A model with an input shift (adapt's correction of
    where it puts beads) sees the scan moved by it (``LoadedModel.shift_for`` each view).

    Returns (prediction in the target's units, per-voxel standard deviation over the TTA transforms or None, info).
    """
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"expected a 3-D volume (H, W, Z), got shape {array.shape}")
    cfg: DenoiserConfig = loaded.train_config.model
    normalizer = loaded.normalizer
    plan = plan_prediction(cfg, array.shape, tile_shape=tile_shape, tta=tta)
    value_range = normalizer.input_range(array)
    if not tta:  # the common case: input and output are the only whole volumes in memory
        tile_fn = normalized_predict_fn(loaded.model, normalizer, value_range, spacing)
        out, plan, retries = predict_unit(
            loaded.model, cfg, shifted_input(loaded, array), plan=plan, report=report, cancel=cancel, tile_fn=tile_fn
        )
        return out, None, _tiling_info(plan, tta=False, transforms=1, retries=retries)
    conditioning(loaded.model, spacing)  # a conditioned model given no voxel size fails before any work
    views: dict[bool, np.ndarray] = {}  # the scan moved for the views with and without a z flip, one at a time
    transforms = TTA_TRANSFORMS
    mean = np.zeros(array.shape, dtype=np.float32)
    m2 = np.zeros(array.shape, dtype=np.float32)
    retries = 0
    for index, (turns, flip) in enumerate(transforms):

        def step_report(p: Progress, index: int = index) -> None:
            fraction = p.fraction
            if fraction is None:
                report(p)
                return
            values = {**p.values, "transform": index + 1, "transforms": len(transforms)}
            report(Progress(index + fraction, len(transforms), p.message, values))

        if flip not in views:
            views.clear()  # before the next view is made: one normalised copy of the scan at a time
            views[flip] = normalizer.before(shifted_input(loaded, array, flip_z=flip), value_range)
        x_turned = forward_transform(views[flip], turns, flip)
        out, plan, more = predict_unit(
            loaded.model, cfg, x_turned, plan=plan, report=step_report, cancel=cancel, turns=turns,
            spacing=spacing,
        )  # fmt: skip
        retries += more
        prediction = normalizer.after(inverse_transform(out, turns, flip))
        delta = prediction - mean
        mean += delta / (index + 1)
        m2 += delta * (prediction - mean)
    uncertainty = np.sqrt(np.maximum(m2 / len(transforms), 0.0)).astype(np.float32)
    return mean, uncertainty, _tiling_info(plan, tta=True, transforms=len(transforms), retries=retries)


def shifted_input(loaded: Any, array: np.ndarray, *, flip_z: bool = False) -> np.ndarray:
    """``array`` moved by the shift of the model (``persistence.LoadedModel.shift_for``) for a view with or without a
    z flip, or ``array`` itself when there is none."""
    shift = loaded.shift_for(flip_z)
    return translate(array, shift) if any(shift) else array


def _tiling_info(plan: PredictionPlan, *, tta: bool, transforms: int, retries: int) -> dict[str, Any]:
    n_tiles = len(plan_tiles(plan.padded_shape, plan.tile_shape, plan.overlap, multiple=plan.multiple))
    return {
        "tile_shape": list(plan.tile_shape),
        "overlap": list(plan.overlap),
        "margin": list(plan.margin),
        "multiple": list(plan.multiple),
        "padded_shape": list(plan.padded_shape),
        "tiles": n_tiles,
        "tta": tta,
        "transforms": transforms,
        "oom_retries": retries,
    }


def runtime_info() -> dict[str, Any]:
    """Library versions and the compute device, for provenance records."""
    return {"versions": {**backend.versions(), "numpy": np.__version__}, "device": describe_device()}
