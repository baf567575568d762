"""Training and prediction speed of the denoiser recipes on the active Keras backend (GPU or CPU).

For each recipe (the CPU default: 8-filter U-Net; the GPU preset's 32-filter U-Net) it times training steps at
batch 4 and 32 on 64x64x32 patches (patches/s and Mvoxel/s, after warm-up steps that include compilation), the
prediction of one 256x256x32 volume and the tiled prediction of a 1024x1024x128 volume, and reports the peak
accelerator memory. One Markdown table on stdout, headed by the backend and device. Run it once per backend::

    KERAS_BACKEND=jax python benchmarks/gpu.py
    KERAS_BACKEND=torch python benchmarks/gpu.py
    python benchmarks/gpu.py --quick          # small sizes: a smoke run on a CPU

See benchmarks/README.md ("GPU") for the recipe that runs it on the GPU machine with the carried Keras wheels.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.ml import backend
from voxelstudio.ml.config import DenoiserConfig, TrainConfig, preset_config
from voxelstudio.ml.denoisers import build_denoiser
from voxelstudio.ml.device import configure_devices, describe_device
from voxelstudio.ml.inference import predict_volume
from voxelstudio.ml.losses import get_loss
from voxelstudio.ml.persistence import LoadedModel


@dataclass(frozen=True)
class Sizes:
    patch: tuple[int, int, int]
    batches: tuple[int, ...]
    steps: int
    warmup: int
    volume: tuple[int, int, int]
    big: tuple[int, int, int]


FULL = Sizes((64, 64, 32), (4, 32), 20, 3, (256, 256, 32), (1024, 1024, 128))
QUICK = Sizes((32, 32, 16), (2, 4), 3, 1, (64, 64, 16), (128, 128, 32))


def recipes() -> dict[str, TrainConfig]:
    return {"default (8 filters)": TrainConfig(), "gpu preset (32 filters)": preset_config("gpu")}


def peak_memory_reset() -> None:
    """Start a fresh peak-memory count where the backend allows it."""
    if backend.name() == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    elif backend.name() == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(ValueError, RuntimeError):
            tf.config.experimental.reset_memory_stats("GPU:0")


def peak_memory_bytes() -> int | None:
    """Peak accelerator memory in use (JAX: since start; torch and TF: since the last reset); None on a CPU."""
    name = backend.name()
    if name == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform != "cpu"]
        stats = gpus[0].memory_stats() if gpus else None
        return None if not stats else int(stats.get("peak_bytes_in_use", 0))
    if name == "torch":
        import torch

        return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
    import tensorflow as tf

    try:
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    except (ValueError, RuntimeError):
        return None


def seconds_per_call(call: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median wall time of ``call`` after ``warmup`` calls (compilation happens there)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def train_step_time(cfg: TrainConfig, batch: int, sizes: Sizes) -> float:
    import keras

    model = build_denoiser(cfg.model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=get_loss(cfg.loss), jit_compile=backend.jit_compile())
    rng = np.random.default_rng(0)
    x = rng.random((batch, *sizes.patch, 1), dtype=np.float32)
    y = rng.random((batch, *sizes.patch, 1), dtype=np.float32)

    def step() -> None:
        loss = model.train_on_batch(x, y)
        float(np.asarray(loss))  # wait for the device

    return seconds_per_call(step, sizes.steps, sizes.warmup)


def predict_time(model_cfg: DenoiserConfig, shape: tuple[int, int, int], repeats: int) -> tuple[float, int]:
    """(seconds per volume, tiles) for a volume of ``shape`` predicted with the default tiling."""
    model = build_denoiser(model_cfg)
    loaded = LoadedModel(model, TrainConfig(model=model_cfg), PercentileNormalizer(), {}, "")
    volume = np.random.default_rng(1).random(shape, dtype=np.float32)
    tiles = 0

    def run() -> None:
        nonlocal tiles
        _, _, info = predict_volume(loaded, volume)
        tiles = int(info["tiles"])

    return seconds_per_call(run, repeats, 1), tiles


def mvoxels(count: int, shape: tuple[int, int, int], seconds: float) -> float:
    return count * math.prod(shape) / seconds / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    info = configure_devices()
    patch = "x".join(map(str, sizes.patch))
    print(f"{describe_device(info)}; {', '.join(f'{k} {v}' for k, v in backend.versions().items())}\n")
    batches = " | ".join(f"train batch {b}: patches/s / Mvoxel/s" for b in sizes.batches)
    volume, big = ("x".join(map(str, s)) for s in (sizes.volume, sizes.big))
    print(f"| recipe ({patch} patches) | {batches} | predict {volume} (ms) | tiled {big} (s) | peak GPU memory (GiB) |")
    print("|---|" + "---:|" * (len(sizes.batches) + 3), flush=True)
    for label, cfg in recipes().items():  # each row as soon as it is measured: a run cut off keeps the rows done
        if cfg.mixed_precision and info.kind == "GPU":
            configure_devices(mixed_precision=True)
        peak_memory_reset()
        cells = [label]
        for batch in sizes.batches:
            seconds = train_step_time(cfg, batch, sizes)
            cells.append(f"{batch / seconds:.1f} / {mvoxels(batch, sizes.patch, seconds):.2f}")
            print(f"{label}: batch {batch}: {seconds * 1e3:.1f} ms per step", file=sys.stderr, flush=True)
        small, _ = predict_time(cfg.model, sizes.volume, repeats=3)
        big_s, tiles = predict_time(cfg.model, sizes.big, repeats=1)
        peak = peak_memory_bytes()
        cells += [f"{small * 1e3:.0f}", f"{big_s:.2f} ({tiles} tiles)", "-" if peak is None else f"{peak / 2**30:.2f}"]
        print("| " + " | ".join(cells) + " |", flush=True)
        import keras

        keras.mixed_precision.set_global_policy("float32")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
