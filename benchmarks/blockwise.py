"""Peak memory and time of block-wise OME-Zarr denoising against whole-volume denoising, in-process and on 2 local
dask workers.

    python benchmarks/blockwise.py                      # 256x256x64 and 512x512x64, the bundled model
    python benchmarks/blockwise.py --quick              # 128x128x32 and 256x256x32
    python benchmarks/blockwise.py --sizes 1024,1024,512 --limit-mb 1500 --chunks 256,256,64 --model M.keras
    python benchmarks/blockwise.py --sizes 768,768,192 --chunks 256,256,64 --no-workers --memory-limit 1.5GB
    python benchmarks/blockwise.py --sizes 1024,1024,512 --chunks 256,256,64 --no-whole --no-workers --no-plain \
        --memory-limit 1.5GB                           # only the limited run
    python benchmarks/blockwise.py --pyramid 1024,1024,256   # only the multiscale levels of a written store
    python benchmarks/blockwise.py --many 50 --many-shape 64,64,16   # only many small files, in-process vs 2 workers

Each run is a fresh child process (``voxelstudio denoise``, or a driver that starts a
``LocalCluster(n_workers=2, processes=True)`` and sends the blocks there); its whole process tree (driver, nannies,
workers) is sampled every 50 ms and the table shows the peak of the summed RSS and the largest single process.
The volume is written chunk by chunk, so this script itself never holds it. ``--limit-mb`` is the memory limit the
table compares against (a volume larger than it must still go through block-wise).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
DRIVER = """
import sys
from dask.distributed import LocalCluster
from voxelstudio.tasks.denoise import denoise_files
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
    denoise_files([sys.argv[1]], out_dir=sys.argv[2], fmt="zarr", scheduler=cluster.scheduler_address)
"""


def make_store(
    path: Path, shape: tuple[int, int, int], seed: int = 0, block: tuple[int, int, int] = (128, 128, 32)
) -> None:
    """A random OME-Zarr (H, W, Z) in chunks of ``block`` (by default 128x128x32: several blocks per volume), written
    one z-chunk at a time."""
    from voxelstudio.io.zarr_ import chunks_for, create_store

    chunks = chunks_for(shape, block)
    array = create_store(path, shape, (0.1, 0.1, 0.3), path.name.split(".")[0], chunks)
    rng = np.random.default_rng(seed)
    for z0 in range(0, shape[2], chunks[0]):
        depth = min(chunks[0], shape[2] - z0)
        array[z0 : z0 + depth] = (rng.random((depth, shape[0], shape[1])) * 0.2).astype(np.float32)


def measure(command: list[str]) -> tuple[float, float, float]:
    """(wall s, peak summed RSS MB, peak single-process RSS MB) of ``command`` and all its descendants."""
    return measure_logged(command)[:3]  # type: ignore[return-value]


def measure_logged(command: list[str]) -> tuple[float, float, float, str]:
    """:func:`measure` and the command's stderr."""
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_sum = peak_one = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_sum, peak_one
        root = psutil.Process(child.pid)
        while not done.is_set():
            try:
                rss = [p.memory_info().rss for p in [root, *root.children(recursive=True)]]
            except psutil.Error:
                rss = []
            if rss:
                peak_sum, peak_one = max(peak_sum, sum(rss) / 1e6), max(peak_one, max(rss) / 1e6)
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = child.communicate()
    done.set()
    thread.join()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{err[-2000:]}")
    return time.monotonic() - started, peak_sum, peak_one, err


def many_files(count: int, shape: tuple[int, int, int]) -> int:
    """``count`` small .npy scans denoised in one ``voxelstudio denoise`` run, in-process and as whole-file tasks
    on ``--scheduler local:2``: wall time, peak RSS and the model loads each worker logged."""
    cli = [sys.executable, "-m", "voxelstudio", "denoise", "--quiet", "--format", "npy"]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        scans = []
        for i in range(count):
            scans.append(str(tmp / f"scan{i:03d}.npy"))
            np.save(scans[-1], (rng.random(shape) * 0.2).astype(np.float32))
        rows = []
        for label, extra, out in (("in-process", [], "p"), ("2 local workers", ["--scheduler", "local:2"], "w")):
            wall, peak_sum, peak_one, err = measure_logged([*cli, *scans, "--out-dir", str(tmp / out), *extra])
            loads: dict[str, int] = {}
            for line in err.splitlines():
                if "loaded the model" in line:
                    worker = line.split()[2]
                    loads[worker] = loads.get(worker, 0) + 1
            rows.append((label, wall, peak_sum, peak_one, loads))
        diff = max(
            float(np.abs(np.load(tmp / "w" / Path(s).name) - np.load(tmp / "p" / Path(s).name)).max()) for s in scans
        )
    print(f"{count} scans of {'x'.join(map(str, shape))}, bundled model; max |2 workers - in-process| = {diff:.1e}\n")
    print("| path | wall (s) | peak RSS, all processes (MB) | peak RSS, largest process (MB) | model loads by worker |")
    print("|---|---|---|---|---|")
    for label, wall, peak_sum, peak_one, loads in rows:
        per_worker = ", ".join(f"{w.rsplit(':', 1)[-1]}: {n}" for w, n in sorted(loads.items())) or "1 (this process)"
        print(f"| {label} | {wall:.1f} | {peak_sum:.0f} | {peak_one:.0f} | {per_worker} |")
    return 0


PYRAMID = "import sys; from voxelstudio.io.zarr_pyramid import write_pyramid; print(write_pyramid(sys.argv[1]))"


def pyramid_only(shape: tuple[int, int, int], chunks: tuple[int, int, int]) -> int:
    """Wall time and peak RSS of writing the lower-resolution levels of a ``shape`` store (level 0 written first)."""
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "p.ome.zarr"
        make_store(store, shape, block=chunks)
        wall, peak, _ = measure([sys.executable, "-c", PYRAMID, str(store)])
        from voxelstudio.io.zarr_ import levels

        found = ", ".join("x".join(map(str, level.shape)) for level in levels(store))
    mb = np.prod(shape) * 4 / 1e6
    print(f"| {'x'.join(map(str, shape))} ({mb:.0f} MB) | levels {found} | {wall:.1f} s | {peak:.0f} MB |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=None, metavar="H,W,Z", help="volume shapes")
    parser.add_argument("--limit-mb", type=float, default=None, help="memory limit to compare with [default: 1500]")
    parser.add_argument("--quick", action="store_true", help="small volumes")
    parser.add_argument("--no-workers", action="store_true", help="skip the 2-worker runs")
    parser.add_argument("--no-whole", action="store_true", help="skip the whole-volume runs")
    parser.add_argument("--no-plain", action="store_true", help="skip the block-wise in-process run without a limit")
    parser.add_argument("--pyramid", metavar="H,W,Z", help="only time writing the pyramid levels of such a store")
    parser.add_argument("--many", type=int, metavar="N", help="only N small files, in-process and on 2 workers")
    parser.add_argument("--many-shape", default="64,64,16", metavar="H,W,Z", help="shape of each of the --many files")
    parser.add_argument("--chunks", default="128,128,32", metavar="H,W,Z", help="the store's chunks [128,128,32]")
    parser.add_argument("--model", metavar="MODEL.keras", help="the denoiser [default: the bundled model]")
    parser.add_argument("--memory-limit", metavar="SIZE", help="also run block-wise in-process with this limit")
    args = parser.parse_args(argv)
    if args.model and not args.no_workers:
        parser.error("--model: the 2-worker runs use the bundled model; add --no-workers")
    if args.pyramid:
        chunks = tuple(int(v) for v in args.chunks.split(","))
        return pyramid_only(tuple(int(v) for v in args.pyramid.split(",")), chunks)  # type: ignore[arg-type]
    if args.many:
        os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
        return many_files(args.many, tuple(int(v) for v in args.many_shape.split(",")))  # type: ignore[arg-type]
    sizes = args.sizes or (["128,128,32", "256,256,32"] if args.quick else ["256,256,64", "512,512,64"])
    limit = args.limit_mb or 1500.0
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    os.environ.update(env)
    cli = [sys.executable, "-m", "voxelstudio", "denoise", "--quiet", *(["--model", args.model] if args.model else [])]
    chunks = tuple(int(v) for v in args.chunks.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for text in sizes:
            shape = tuple(int(v) for v in text.split(","))
            store = tmp / f"v{'x'.join(map(str, shape))}.ome.zarr"
            make_store(store, shape, block=chunks)  # type: ignore[arg-type]
            mb = np.prod(shape) * 4 / 1e6
            runs = [
                ("whole volume (.npy in memory)", [*cli, str(store), "--out-dir", str(tmp / "n"), "--format", "npy"]),
                ("block-wise, in-process", [*cli, str(store), "--out-dir", str(tmp / "b"), "--format", "zarr"]),
            ]
            if args.memory_limit:
                limited = [*cli, str(store), "--out-dir", str(tmp / "m"), "--format", "zarr"]
                runs.append((f"block-wise, in-process, --memory-limit {args.memory_limit}",
                             [*limited, "--memory-limit", args.memory_limit]))  # fmt: skip
            if args.no_plain:
                runs.pop(1)
            if args.no_whole:
                runs.pop(0)
            if not args.no_workers:
                runs.append(("block-wise, 2 local workers", [sys.executable, "-c", DRIVER, str(store), str(tmp / "w")]))
            outputs = {}
            for label, command in runs:
                wall, peak_sum, peak_one = measure(command)
                rows.append((f"{'x'.join(map(str, shape))} ({mb:.0f} MB)", label, wall, peak_sum, peak_one))
                print(f"{rows[-1]}", file=sys.stderr, flush=True)
            from voxelstudio.io import load_volume

            for name in ("n", "b", "w", "m") if not args.no_whole else ():
                found = list((tmp / name).glob(f"{store.name.split('.')[0]}.*"))
                data = [p for p in found if not p.name.endswith(".json")]
                if data:
                    outputs[name] = load_volume(data[0]).data
            reference = outputs.get("n")
            for name in ("b", "w", "m"):
                if reference is not None and name in outputs:
                    diff = float(np.abs(outputs[name] - reference).max())
                    print(f"{text}: max |{name} - whole| = {diff:.2e}", file=sys.stderr)
    cores = os.cpu_count()
    ram = psutil.virtual_memory().total / 2**30
    print(
        f"{args.model or 'Bundled default model'}, chunks {args.chunks}, {cores} cores, {ram:.0f} GiB RAM, "
        f"memory limit compared with: {limit:.0f} MB; RSS summed over the run's whole process tree (TensorFlow "
        "alone is several hundred MB per process)\n"
    )
    print("| volume | path | wall (s) | peak RSS, all processes (MB) | peak RSS, largest process (MB) |")
    print("|---|---|---|---|---|")
    for volume, label, wall, peak_sum, peak_one in rows:
        print(f"| {volume} | {label} | {wall:.1f} | {peak_sum:.0f} | {peak_one:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
