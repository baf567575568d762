"""Resident memory over many load -> denoise -> export cycles in one process (the GUI-free path).

Each cycle is what ``voxelstudio denoise`` does for one file (``tasks.denoise.denoise_files``): load the volume, load
the model, predict, write the output and its provenance sidecar. The model is a tiny untrained denoiser (memory does
not depend on its weights), so the numbers show what the pipeline itself keeps, not TensorFlow's working set. One row
per export format; "RSS start" is taken after WARM_UP cycles (first-use allocations, traced graphs). The GUI loop is
covered by the GUI tests, not here. Run from the repository root::

    python benchmarks/memory.py                 # 100 cycles per format, 32x32x16 volume
    python benchmarks/memory.py --quick         # 20 cycles per format
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import psutil

from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume
from voxelstudio.tasks.denoise import denoise_files

WARM_UP = 5
MIB = float(1 << 20)


def tiny_model(folder: Path) -> Path:
    import keras

    from voxelstudio.core.normalize import PercentileNormalizer
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.persistence import save_model

    keras.utils.set_random_seed(0)
    cfg = TrainConfig(model=DenoiserConfig.for_arch("simple", filters=2, kernel=(3, 3, 3), n_layers=2))
    return save_model(build_denoiser(cfg.model), folder / "tiny.keras", train_config=cfg,
                      normalizer=PercentileNormalizer(), extra={})  # fmt: skip


def measure(model: Path, source: Path, out_dir: Path, fmt: str, cycles: int) -> dict[str, float]:
    """RSS after the warm-up and at the end, and seconds per cycle after the warm-up."""
    process = psutil.Process()
    start_rss = started = 0.0
    for cycle in range(cycles):
        if cycle == WARM_UP:
            start_rss, started = process.memory_info().rss / MIB, time.perf_counter()
        denoise_files([source], model_path=model, out_dir=out_dir, fmt=fmt, overwrite=True)
    end_rss = process.memory_info().rss / MIB
    per_cycle = (time.perf_counter() - started) / (cycles - WARM_UP)
    return {"start": start_rss, "end": end_rss, "growth": end_rss - start_rss, "per_cycle": per_cycle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100, help="cycles per export format [100]")
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 32, 16), metavar=("H", "W", "Z"))
    parser.add_argument("--formats", nargs="+", default=["mat", "tif", "npy"], choices=["mat", "tif", "npy"])
    parser.add_argument("--quick", action="store_true", help="20 cycles per format")
    args = parser.parse_args()
    cycles = 20 if args.quick else args.cycles
    if cycles <= WARM_UP:
        parser.error(f"--cycles must exceed the {WARM_UP} warm-up cycles")
    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = tiny_model(work)
        data = np.random.default_rng(0).random(shape).astype(np.float32)
        source = save_volume(Volume(data, spacing=(0.2, 0.2, 0.5)), work / "scan.mat")
        rows = [(fmt, measure(model, source, work / "out", fmt, cycles)) for fmt in args.formats]
    size = "x".join(map(str, shape))
    print(f"\nload -> denoise -> export of a {size} volume, {cycles} cycles per format in one process "
          f"(tiny model, CPU; RSS start after {WARM_UP} warm-up cycles; GUI-free path only)\n")  # fmt: skip
    print("| export | cycles | RSS start (MiB) | RSS end (MiB) | growth (MiB) | s per cycle |")
    print("|---|---:|---:|---:|---:|---:|")
    for fmt, r in rows:
        print(f"| .{fmt} | {cycles} | {r['start']:.0f} | {r['end']:.0f} | {r['growth']:+.1f} | {r['per_cycle']:.3f} |")


if __name__ == "__main__":
    main()
