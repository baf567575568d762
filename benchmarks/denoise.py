"""Benchmark the denoisers against Richardson-Lucy and CARE on held-out simulated bead scans.

Data (simulated, nothing downloaded): 5 training pairs (4 train + 1 validation, as in the original work) from one
microscope setting (``SimParams()``: NA 1.4 oil, 520 nm, 60 photons), and 4 held-out test pairs from two *other*
settings (a different PSF and noise: see ``TEST_SETTINGS``), all 256x256x32 voxels.

Rows: the raw scan; Richardson-Lucy with each test pair's true PSF (20 and 100 iterations); CARE (CSBDeep's 3-D U-Net,
its own defaults, same pairs and wall-clock budget); our three architectures (same pairs and budget); the bundled
default model (trained once on many random settings, not on these pairs); the bundled model fine-tuned on the pairs
(``train-denoiser --init``, same budget: issue 13's fine-tuning comparison). Two rows per test microscope (issue 12):
``adapt`` sees only one raw test scan of each setting (no target), calibrates the simulator on it and fine-tunes the
bundled model within ``--adapt-minutes`` of one core in all; ``care-matched`` is CARE trained for
``--matched-minutes`` of one core on 4 pairs (+1 validation) simulated with that very setting, i.e. what a user
with clean targets from that microscope would get. Both predict every test scan of their setting. Columns: PSNR and
SSIM after an affine fit to the target, bead detection F1, median axial/lateral (z/xy) bead FWHM ratio, training
minutes, inference seconds per 256x256x32 volume (mean over the test volumes after one warm-up), and the peak RSS of
the process that trained and predicted. A last line times a 1024x1024x128 volume through tiled inference with the
bundled model.

Every method runs in its own subprocess (so its peak RSS is its own). CARE needs ``csbdeep`` and ``tf-keras``; they
clash with Keras 3, so they live in their own virtual environment::

    python -m venv --system-site-packages ~/.cache/vs-care-venv
    ~/.cache/vs-care-venv/bin/pip install csbdeep "tf-keras==2.21.0"   # tf-keras's version = TensorFlow's

Run from the repository root::

    python benchmarks/denoise.py                 # 10 minutes of training per model (about 2 hours in all)
    python benchmarks/denoise.py --quick         # a smoke run: small volumes, 30 s of training
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from run_all import machine_summary  # beside this script (its folder is on sys.path when run)

from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.sim import OpticsParams, SimParams, simulate_pair

HERE = Path(__file__).resolve().parent
CARE_WORKER = HERE / "care_worker.py"
DEFAULT_CARE_PYTHON = Path.home() / ".cache" / "vs-care-venv" / "bin" / "python"

TRAIN_SETTING = SimParams()
TEST_SETTINGS = {
    "NA 1.3, 580 nm, 6 um deep, 40 photons, haze 0.45": SimParams(
        optics=OpticsParams(na=1.3, wavelength_um=0.58, depth_um=6.0),
        photons=40.0,
        haze=0.45,
        background=0.3,
    ),
    "NA 1.45, 480 nm, glycerol sample, 150 photons, read noise 4": SimParams(
        optics=OpticsParams(na=1.45, wavelength_um=0.48, ns=1.45, depth_um=3.0),
        photons=150.0,
        read_noise=4.0,
        haze=0.2,
    ),
}
PAIRS_PER_TEST_SETTING = 2
MATCHED_PAIRS = 5
"""Pairs simulated with each test setting for ``care-matched`` (4 train + 1 validation, as in the original work)."""
ARCHS = ("simple", "unet", "resunet")
MATCHED = ("care-matched", "adapt")
METHODS = ("raw", "rl20", "rl100", "care", *ARCHS, "bundled", "finetune", *MATCHED)
TRAINED = (*ARCHS, "finetune")
FINE_TUNE_LEARNING_RATE = 2e-4
"""Adam's step when fine-tuning the bundled model: a fifth of training from scratch, so the first steps on 4 pairs
do not undo what many simulated microscopes taught it."""
LABELS = {
    "raw": "raw scan",
    "rl20": "Richardson-Lucy, true PSF, 20 it",
    "rl100": "Richardson-Lucy, true PSF, 100 it",
    "care": "CARE (csbdeep 3-D U-Net)",
    "simple": "ours: simple (16x16x8 kernels)",
    "unet": "ours: unet",
    "resunet": "ours: resunet",
    "bundled": "ours: bundled default model",
    "finetune": "ours: bundled model fine-tuned on the 4 pairs",
    "care-matched": "CARE on 4 pairs of each test microscope",
    "adapt": "ours: adapt to each test microscope's raw scan (no target)",
}


# ----------------------------------------------------------------------------------------------------------- data
def write_data(work: Path, shape: tuple[int, int, int], n_test: int) -> None:
    """Training pairs ``train/{raw,target}/pair_<i>.mat`` and test pairs ``test/...`` with ``test/settings.json``."""
    for index in range(5):
        _write_pair(work / "train", f"pair_{index + 1}", shape, TRAIN_SETTING, seed=100 + index)
    settings: dict[str, dict] = {}
    for index in range(n_test):
        label, params = list(TEST_SETTINGS.items())[index // PAIRS_PER_TEST_SETTING % len(TEST_SETTINGS)]
        name = f"test_{index + 1}"
        _write_pair(work / "test", name, shape, params, seed=900 + index)
        settings[name] = {"label": label, "optics": params.optics.to_dict()}
    (work / "test" / "settings.json").write_text(json.dumps(settings, indent=1))


def _write_pair(folder: Path, name: str, shape: tuple[int, int, int], params: SimParams, seed: int) -> None:
    raw, target = simulate_pair(shape, params, seed=seed)
    spacing = params.optics.voxel_size_um
    for role, data in (("raw", raw), ("target", target)):
        (folder / role).mkdir(parents=True, exist_ok=True)
        save_volume(Volume(data, spacing, name=name), folder / role / f"{name}.mat", overwrite=True)


def write_matched_data(work: Path, shape: tuple[int, int, int]) -> None:
    """``MATCHED_PAIRS`` pairs of each test setting under ``matched/<k>/{raw,target}/`` (seeds unlike the tests')."""
    for k, params in enumerate(TEST_SETTINGS.values()):
        folder = work / "matched" / str(k)
        if not (folder / "raw").exists():
            for index in range(MATCHED_PAIRS):
                _write_pair(folder, f"pair_{index + 1}", shape, params, seed=500 + 10 * k + index)


def test_names(work: Path) -> list[str]:
    return sorted(json.loads((work / "test" / "settings.json").read_text()))


def tests_by_label(work: Path) -> dict[str, list[str]]:
    """The test names of each test setting's label, in ``TEST_SETTINGS`` order (settings without a test left out)."""
    settings = json.loads((work / "test" / "settings.json").read_text())
    groups = {label: [name for name in sorted(settings) if settings[name]["label"] == label] for label in TEST_SETTINGS}
    return {label: names for label, names in groups.items() if names}


def tests_by_setting(work: Path) -> list[list[str]]:
    """The test names of each test setting, in ``TEST_SETTINGS`` order (settings without a test left out)."""
    return list(tests_by_label(work).values())


# -------------------------------------------------------------------------------------------------------- workers
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def recipe(arch: str, minutes: float):
    """The training recipe shared by our architectures: linear output, MSE, Adam 1e-3, 64x64x32 patches."""
    from voxelstudio.ml.config import DenoiserConfig, LossConfig, TrainConfig

    return TrainConfig(
        model=DenoiserConfig.for_arch(arch, output_activation="linear"),
        loss=LossConfig(name="mse"),
        epochs=100_000,
        minutes=minutes,
        learning_rate=1e-3,
        batch_size=4,
        patch_shape=(64, 64, 32),
        steps_per_epoch=16,
        lr_patience=15,
        early_stopping_patience=60,
        seed=0,
    )


def run_worker(method: str, work: Path, minutes: float) -> dict:
    """Train (when the method trains) and predict every test volume; predictions go to ``pred/<method>/``."""
    out = work / "pred" / method
    out.mkdir(parents=True, exist_ok=True)
    names = test_names(work)
    raws = {name: load_volume(work / "test" / "raw" / f"{name}.mat") for name in names}
    train_s = 0.0
    if method == "adapt":
        return run_adapt(work, raws, minutes)
    if method.startswith("rl"):
        predict = _rl_predictor(work, int(method[2:]))
    else:
        model_path = None
        if method in TRAINED:
            model_path, train_s = _train(method, work, minutes)
        predict = _model_predictor(model_path)
    times = []
    for name in [names[0], *names]:  # the first call is a warm-up (graph tracing, PSF simulation)
        started = time.perf_counter()
        prediction = predict(raws[name])
        times.append(time.perf_counter() - started)
        np.save(out / f"{name}.npy", prediction)
    return {"train_s": train_s, "infer_s": statistics.mean(times[1:]), "peak_rss_mb": peak_rss_mb()}


def run_adapt(work: Path, raws: dict[str, Volume], minutes: float) -> dict:
    """Adapt to each test setting from its first raw scan alone (the emission wavelength given, as a user knows
    their dye) within ``minutes`` in all, then predict that setting's scans with the adapted model."""
    from voxelstudio.tasks.adapt import adapt_volumes

    settings = json.loads((work / "test" / "settings.json").read_text())
    out, walls, times = work / "pred" / "adapt", [], []
    (work / "models").mkdir(exist_ok=True)
    for k, names in enumerate(tests_by_setting(work)):
        started = time.perf_counter()
        wavelength = OpticsParams.from_dict(settings[names[0]]["optics"]).wavelength_um
        model_path = work / "models" / f"adapt_{k}.keras"
        adapt_volumes([raws[names[0]]], model_path, minutes=minutes, wavelength_um=wavelength)
        walls.append(time.perf_counter() - started)
        predict = _model_predictor(model_path)
        predict(raws[names[0]])  # a warm-up (graph tracing), as for the other rows
        for name in names:
            tick = time.perf_counter()
            np.save(out / f"{name}.npy", predict(raws[name]))
            times.append(time.perf_counter() - tick)
    return {"train_s": statistics.mean(walls), "infer_s": statistics.mean(times), "peak_rss_mb": peak_rss_mb()}


def _rl_predictor(work: Path, iterations: int):
    from voxelstudio.tasks.deconvolve import richardson_lucy_volume

    settings = json.loads((work / "test" / "settings.json").read_text())

    def predict(volume: Volume) -> np.ndarray:
        optics = OpticsParams.from_dict(settings[volume.name]["optics"])
        return richardson_lucy_volume(volume, optics=optics, iterations=iterations).data

    return predict


def _model_predictor(model_path: Path | None):
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model
    from voxelstudio.tasks.denoise import default_model_path

    loaded = load_model(model_path or default_model_path())

    def predict(volume: Volume) -> np.ndarray:
        model = loaded.for_spacing(volume.known_spacing)  # its input shift in this scan's voxels, as denoise does
        return predict_volume(model, volume.data, spacing=volume.spacing)[0]

    return predict


def _train(method: str, work: Path, minutes: float) -> tuple[Path, float]:
    """Train ``method`` (an architecture from scratch, or "finetune": the bundled model's weights and architecture)
    on the 4 training pairs for ``minutes``, validating on the fifth."""
    from voxelstudio.tasks.train import load_pairs, train_denoiser

    pairs = load_pairs(work / "train" / "raw", work / "train" / "target")
    model_path = work / "models" / f"{method}.keras"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    init, config = None, recipe("unet" if method == "finetune" else method, minutes)
    if method == "finetune":
        from dataclasses import replace

        from voxelstudio.ml.persistence import load_model
        from voxelstudio.tasks.denoise import default_model_path

        init = default_model_path()
        bundled = load_model(init).train_config
        config = replace(config, model=bundled.model, learning_rate=FINE_TUNE_LEARNING_RATE)
    started = time.perf_counter()
    train_denoiser(pairs[:4], config=config, out=model_path, val_pairs=[pairs[4]], init=init)
    return model_path, time.perf_counter() - started


def run_large(work: Path, shape: tuple[int, int, int]) -> dict:
    """Tiled inference of the bundled model on the first test raw tiled up to ``shape``."""
    from voxelstudio.tasks.denoise import denoise_volume

    raw = load_volume(work / "test" / "raw" / f"{test_names(work)[0]}.mat")
    reps = [-(-n // m) for n, m in zip(shape, raw.shape, strict=True)]
    big = np.tile(raw.data, reps)[: shape[0], : shape[1], : shape[2]]
    volume = Volume(np.ascontiguousarray(big), raw.spacing, name="large")
    del big
    started = time.perf_counter()
    result = denoise_volume(volume)
    elapsed = time.perf_counter() - started
    tiling = result.provenance["tiling"]
    return {"infer_s": elapsed, "peak_rss_mb": peak_rss_mb(), "tiles": tiling["tiles"], "tile": tiling["tile_shape"]}


# ----------------------------------------------------------------------------------------------------- orchestration
def launch(method: str, work: Path, args: argparse.Namespace) -> dict:
    """Run one method in a subprocess (one per test setting for ``care-matched``); returns its JSON record (or
    ``{"error": ...}``)."""
    if method == "care-matched":
        write_matched_data(work, args.shape)
        records = [
            _run(method, _care_command(args, work, args.matched_minutes, work / "matched" / str(k), names), work, args)
            for k, names in enumerate(tests_by_setting(work))
        ]
        failed = [r for r in records if "error" in r]
        if failed:
            return failed[0]
        means = {key: statistics.mean(r[key] for r in records) for key in ("train_s", "infer_s")}
        return {**means, "peak_rss_mb": max(r["peak_rss_mb"] for r in records)}  # one process per microscope
    if method == "care":
        command = _care_command(args, work, args.minutes)
    else:
        minutes = args.adapt_minutes if method == "adapt" else args.minutes
        command = [sys.executable, __file__, "--worker", method, "--work", str(work), "--minutes", str(minutes)]
        if method == "large":
            command += ["--large-shape", *map(str, args.large_shape)]
    return _run(method, command, work, args)


def _care_command(
    args: argparse.Namespace, work: Path, minutes: float, train_dir: Path | None = None, tests: list[str] | None = None
) -> list[str]:
    command = [args.care_python, str(CARE_WORKER), "--work", str(work), "--minutes", str(minutes)]
    if train_dir is not None:
        command += ["--train-dir", str(train_dir), "--tests", ",".join(tests or []), "--name", "care-matched"]
    return command


def _run(method: str, command: list[str], work: Path, args: argparse.Namespace) -> dict:
    if command[0] == args.care_python:
        if not Path(args.care_python).exists():
            return {"error": f"not run: no CARE environment at {args.care_python} (see this script's docstring)"}
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    else:
        env = dict(os.environ)
    if args.pin is not None:  # one core, one TensorFlow thread: wall minutes are CPU minutes
        command = ["taskset", "-c", str(args.pin), *command]
        env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
    record_path = work / "pred" / f"{method}.json"
    record_path.unlink(missing_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {method} ...", file=sys.stderr, flush=True)
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0 or not record_path.exists():
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"failed (exit {completed.returncode}): {tail[0]}"}
    return json.loads(record_path.read_text())


def _median_ratio(rows: list[dict]) -> float | None:
    ratios = [r["fwhm_ratio"] for r in rows if r["fwhm_ratio"] is not None]
    return statistics.median(ratios) if ratios else None


def score(method: str, work: Path) -> dict:
    """Mean PSNR/SSIM/F1 and median z/xy FWHM ratio of a method's predictions over the test pairs, and per test
    setting (``by_setting``: mean F1 and median z/xy of its scans; the overall z/xy mixes settings whose ratios
    differ, so the per-setting values are the ones to read against the target's)."""
    from voxelstudio.metrics import evaluate_pair

    rows = {}
    for name in test_names(work):
        target = load_volume(work / "test" / "target" / f"{name}.mat")
        if method == "raw":
            prediction = load_volume(work / "test" / "raw" / f"{name}.mat").data
        else:
            prediction = np.load(work / "pred" / method / f"{name}.npy")
        rows[name] = evaluate_pair(prediction, target.data, target.spacing)
    every = list(rows.values())
    groups = {label: [rows[name] for name in names] for label, names in tests_by_label(work).items()}
    return {
        "psnr": statistics.mean(r["psnr"] for r in every),
        "ssim": statistics.mean(r["ssim"] for r in every),
        "f1": statistics.mean(r["f1"] for r in every),
        "ratio": _median_ratio(every),
        "by_setting": {label: (statistics.mean(r["f1"] for r in g), _median_ratio(g)) for label, g in groups.items()},
        "target_ratio": statistics.median(r["target_fwhm_ratio"] for r in every if r["target_fwhm_ratio"]),
    }


def print_table(results: dict[str, dict], args: argparse.Namespace, n_test: int, target_ratio: float | None) -> None:
    h, w, z = args.shape
    print(
        f"\n{n_test} held-out test pairs "
        f"({h}x{w}x{z}) from settings unlike the 4 training pairs; {args.minutes:g} min of training per model "
        f"(adapt: {args.adapt_minutes:g} min in all, CARE on matched pairs: {args.matched_minutes:g} min, per test "
        f"setting{', one core each' if args.pin is not None else ''}); "
        f"{machine_summary()}; {time.strftime('%Y-%m-%d')}\n"
    )
    print("| method | PSNR (dB) | SSIM | bead F1 | z/xy FWHM | train (min) | inference (s/volume) | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for method in METHODS:
        r = results.get(method)
        if r is None:
            continue
        if "error" in r:
            print(f"| {LABELS[method]} | {r['error']} | | | | | | |")
            continue
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        train = f"{r['train_s'] / 60:.1f}" if r.get("train_s") else "-"
        infer = f"{r['infer_s']:.2f}" if "infer_s" in r else "-"
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"
        print(
            f"| {LABELS[method]} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['f1']:.3f} | {ratio} | {train} | "
            f"{infer} | {rss} |"
        )
    if target_ratio is not None:
        print(f"| target (ground truth) | | | 1.000 | {target_ratio:.2f} | | | |")
    print_by_setting(results)
    large = results.get("large")
    if large is not None:
        shape = "x".join(map(str, args.large_shape))
        if "error" in large:
            print(f"\nTiled inference of {shape}: {large['error']}")
        else:
            print(
                f"\nTiled inference of a {shape} volume with the bundled model: {large['infer_s']:.1f} s, "
                f"{large['tiles']} tiles of {'x'.join(map(str, large['tile']))}, peak RSS {large['peak_rss_mb']:.0f} MB"
            )


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def print_by_setting(results: dict[str, dict]) -> None:
    """Bead F1 and z/xy of every scored method on each test setting (the targets are per setting)."""
    scored = [(method, results[method]["by_setting"]) for method in METHODS if "by_setting" in results.get(method, {})]
    if not scored:
        return
    labels = list(scored[0][1])
    print("\nPer test setting (bead F1 / z/xy FWHM):\n")
    print("| method | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for method, by_setting in scored:
        cells = [f"{f1:.3f} / {'-' if ratio is None else f'{ratio:.2f}'}" for f1, ratio in by_setting.values()]
        print(f"| {LABELS[method]} | " + " | ".join(cells) + " |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model (wall clock)")
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 32), metavar=("H", "W", "Z"))
    parser.add_argument("--test-pairs", type=int, default=len(TEST_SETTINGS) * PAIRS_PER_TEST_SETTING)
    parser.add_argument("--large-shape", type=int, nargs=3, default=(1024, 1024, 128), metavar=("H", "W", "Z"))
    parser.add_argument("--only", nargs="+", choices=[*METHODS, "large"], help="run only these rows")
    parser.add_argument("--adapt-minutes", type=float, help="adapt budget per test setting, all in [default 5]")
    parser.add_argument("--matched-minutes", type=float, help="care-matched budget per test setting [default 25]")
    parser.add_argument("--pin", type=int, metavar="CORE", help="run each method on this core with one thread")
    parser.add_argument("--care-python", default=os.environ.get("VS_CARE_PYTHON", str(DEFAULT_CARE_PYTHON)))
    parser.add_argument("--work", type=Path, help="keep data, models and predictions here (default: a temp folder)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 128x128x32, 2 test pairs, 0.5 min training")
    parser.add_argument("--worker", choices=[*METHODS, "large"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.shape, args.test_pairs, args.large_shape = 0.5, (128, 128, 32), 2, (256, 256, 64)
        args.adapt_minutes = args.adapt_minutes or 0.5
        args.matched_minutes = args.matched_minutes or 0.5
    args.adapt_minutes = args.adapt_minutes or 5.0
    args.matched_minutes = args.matched_minutes or 25.0
    args.shape, args.large_shape = tuple(args.shape), tuple(args.large_shape)
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        record = run_large(args.work, args.large_shape) if args.worker == "large" else None
        record = record or run_worker(args.worker, args.work, args.minutes)
        (args.work / "pred" / f"{args.worker}.json").write_text(json.dumps(record))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        manifest = {  # what the data were made with, the simulator's parameters included
            "shape": list(args.shape),
            "test_pairs": args.test_pairs,
            "train": TRAIN_SETTING.to_dict(),
            "test": {label: params.to_dict() for label, params in TEST_SETTINGS.items()},
        }
        if _read_json(work / "manifest.json") != manifest:  # none yet, or another run's data: start afresh
            for folder in ("train", "test", "matched", "pred", "models"):
                shutil.rmtree(work / folder, ignore_errors=True)
            write_data(work, args.shape, args.test_pairs)
            (work / "manifest.json").write_text(json.dumps(manifest))
        (work / "pred").mkdir(parents=True, exist_ok=True)
        results: dict[str, dict] = {}
        target_ratio = None
        for method in args.only or [*METHODS, "large"]:
            record = {} if method == "raw" else launch(method, work, args)
            if method != "large" and "error" not in record:
                scores = score(method, work)
                target_ratio = scores.pop("target_ratio")
                record.update(scores)
            results[method] = record
        print_table(results, args, len(test_names(work)), target_ratio)
    failed = [method for method, record in results.items() if "error" in record]
    if failed:  # run_all.py keeps the section it had rather than one with error rows
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
