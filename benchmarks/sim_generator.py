"""Throughput of the simulated-patch generator (``ml.sim_dataset.SimulatedPatches`` over ``sim.stream.PatchStream``)
and how much light the beads outside the stack add.

For each worker count the generator runs as ``fit`` would drive it (Keras's ordered enqueuer, spawn worker
processes, every parameter drawn per patch, optics from a pool of MICROSCOPES): the first WARM_UP batches are
discarded (process start-up, imports), then BATCHES batches are timed. "PSF misses" are Gibson-Lanni integrals
computed (once per microscope and worker); the hit rate counts every PSF look-up. The steady-state column is the
rate once every microscope's PSF is cached (a pool of 2). The second table is the default
``SimParams`` at 128x128x32, with and without the out-of-stack layers, and random draws. Run from the repository
root::

    python benchmarks/sim_generator.py             # 64x64x32 patches, batches of 8, 1 and 2 workers
    python benchmarks/sim_generator.py --quick     # fewer batches
    python benchmarks/sim_generator.py --workers 1 2 4 8 16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from voxelstudio.sim import SimParams, pair, simulate_pair
from voxelstudio.sim.psf_cache import PsfCache
from voxelstudio.sim.stream import PatchStream, simulate_batch

PATCH = (64, 64, 32)
BATCH = 8
MICROSCOPES = 256
WARM_UP = 2


def run(stream: PatchStream, workers: int, batches: int) -> dict[str, float]:
    # Keras is imported here, not at the top: spawned workers import this script and should not load TensorFlow
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from voxelstudio.ml.sim_dataset import SimulatedPatches

    queue = 2 * workers + 2
    with SimulatedPatches(stream, workers=workers, use_multiprocessing=workers > 0, max_queue_size=queue) as ds:
        iterator = PyDatasetAdapter(ds).get_numpy_iterator()
        for _ in range(WARM_UP):
            next(iterator)
        before = dict(ds.counts)
        started = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        seconds = time.perf_counter() - started
        counts = {k: ds.counts[k] - before.get(k, 0) for k in ("cache_hits", "cache_disk_hits", "cache_misses")}
        found = counts["cache_hits"] + counts["cache_disk_hits"]
        rate = batches * stream.batch_size / seconds
        hit_rate = found / max(found + counts["cache_misses"], 1)
        return {"rate": rate, "misses": counts["cache_misses"], "disk": counts["cache_disk_hits"], "hit_rate": hit_rate}


def cpu_per_patch(batches: int) -> tuple[float, float]:
    """CPU seconds per patch in this process, single-threaded FFTs: (PSF cached, PSF computed for every patch);
    a measure the other load on the machine hardly changes."""
    pair.fft_workers = 1
    cache = PsfCache()
    warm = PatchStream(patch_shape=PATCH, batch_size=BATCH, microscopes=1)
    simulate_batch(warm, 0, cache)
    started = time.process_time()
    for index in range(1, batches + 1):
        simulate_batch(warm, index, cache)
    cached = (time.process_time() - started) / (batches * BATCH)
    fresh = PatchStream(patch_shape=PATCH, batch_size=BATCH, microscopes=0)
    started = time.process_time()
    simulate_batch(fresh, 0, cache)
    computed = (time.process_time() - started) / BATCH
    pair.fft_workers = -1
    return cached, computed


def throughput_table(workers: list[int], batches: int) -> None:
    cached, computed = cpu_per_patch(max(batches // 4, 2))
    print(f"CPU time per patch in one process: {cached * 1e3:.0f} ms with its PSF cached ({1 / cached:.1f} patches/s "
          f"per free core), {computed * 1e3:.0f} ms when its PSF is computed; load average "
          f"{os.getloadavg()[0]:.1f} at start.\n")  # fmt: skip
    print(f"Patches {PATCH[0]}x{PATCH[1]}x{PATCH[2]} (each cut from a {PATCH[0] + 32}x{PATCH[1] + 32}x{PATCH[2]} "
          f"simulation), batches of {BATCH}, {batches} timed batches after {WARM_UP} warm-up batches; "
          f"{os.cpu_count()} CPUs. The workers share PSFs through a cache folder.\n")  # fmt: skip
    print(f"| workers | patches/s (pool of {MICROSCOPES}, cold) | PSFs computed | PSFs read from the folder "
          "| PSF cache hit rate | patches/s (every PSF cached) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for count in workers:
        with tempfile.TemporaryDirectory() as folder:
            cold = run(PatchStream(patch_shape=PATCH, batch_size=BATCH, microscopes=MICROSCOPES, cache_dir=folder),
                       count, batches)  # fmt: skip
            warm_stream = PatchStream(patch_shape=PATCH, batch_size=BATCH, microscopes=2, cache_dir=folder)
            steady = run(warm_stream, count, max(batches // 2, 2))
        print(f"| {count} | {cold['rate']:.1f} | {cold['misses']:.0f} | {cold['disk']:.0f} | {cold['hit_rate']:.0%} "
              f"| {steady['rate']:.1f} |", flush=True)  # fmt: skip


def light_table(draws: int) -> None:
    shape = (128, 128, 32)
    print(f"\nOut-of-stack light at {shape[0]}x{shape[1]}x{shape[2]}: mean added raw intensity (bead peak = 1) and its "
          "ratio to the mean light of the beads inside the stack (noise-free, no background or haze); "
          "random rows: mean over draws of SimParams.random.\n")  # fmt: skip
    print("| parameters | out_of_stack | added light | / in-stack bead light | / default haze + background |")
    print("|---|---:|---:|---:|---:|")
    quiet = {"background": 0.0, "haze": 0.0, "read_noise": 0.0, "photons": 5000.0, "offset": 0.0}

    def added(params: SimParams, seed: int) -> tuple[float, float]:
        on, _ = simulate_pair(shape, params.replace(**quiet), seed=seed)
        off, _ = simulate_pair(shape, params.replace(**quiet, out_of_stack=0.0), seed=seed)
        return float((on - off).mean()) / 5000.0, float(off.mean()) / 5000.0

    default = SimParams()
    extra, inside = np.mean([added(default, seed) for seed in range(3)], axis=0)
    level = default.haze + default.background
    print(f"| default | {default.out_of_stack:g} | {extra:.4f} | {extra / inside:.2f} | {extra / level:.3f} |")
    rng = np.random.default_rng(0)
    values = []
    for seed in range(draws):
        params = SimParams.random(rng)
        if params.bead_density > 0:
            values.append((*added(params, seed), params.out_of_stack))
    extra_r, _, thickness = np.mean(values, axis=0)
    ratios = np.mean([e / i for e, i, _ in values if i > 0])
    print(
        f"| random ({len(values)} draws) | {thickness:.2f} (mean) | {extra_r:.4f} | {ratios:.2f} | "
        f"{extra_r / level:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer batches and draws")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, default=None)
    args = parser.parse_args()
    batches = args.batches or (6 if args.quick else 20)
    throughput_table(args.workers, batches)
    light_table(4 if args.quick else 12)


if __name__ == "__main__":
    main()
