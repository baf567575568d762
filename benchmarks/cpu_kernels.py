"""TensorFlow's CPU kernels: training and prediction speed with its oneDNN kernels off and on.

TensorFlow turns oneDNN on by itself only on CPUs with neural-network instructions (AVX-512 VNNI or BF16, AMX);
elsewhere its 3-D convolutions run kernels built for plain AVX. ``voxelstudio.ml`` sets ``TF_ENABLE_ONEDNN_OPTS=1``
unless the user set it. Each setting runs in a fresh process (the switch is read once, when TensorFlow starts) with
``--threads`` TensorFlow threads and times: a training step of the CPU-preset VRN and of VoxNet (32 grids of 32^3), a
training step of the bundled denoiser's U-Net (batch 4 of 48x48x32), and the bundled denoiser on the bundled 128x128x32
sample (as ``denoise`` runs it: loading the model file included)::

    python benchmarks/cpu_kernels.py               # one thread, as the benchmarks pin it
    python benchmarks/cpu_kernels.py --threads 2
    python benchmarks/cpu_kernels.py --quick       # fewer repeats
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

SETTINGS = ("0", "1")
ROWS = (
    ("vrn_step", "VRN (CPU preset) training step, 32 grids 32^3"),
    ("voxnet_step", "VoxNet training step, 32 grids 32^3"),
    ("unet_step", "bundled denoiser's U-Net training step, 4 patches 48x48x32"),
    ("denoise", "bundled denoiser on the 128x128x32 sample, model load included"),
)


def measure(repeats: int) -> dict[str, float]:
    """Seconds per operation in this process (after one warm-up each)."""
    import numpy as np

    from voxelstudio.core.resources import resource_path
    from voxelstudio.io import load_volume
    from voxelstudio.ml.classifier_config import ClassifierConfig
    from voxelstudio.ml.classifiers import build_classifier
    from voxelstudio.ml.config import TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.tasks.denoise import denoise_volume

    def timed(step: object) -> float:
        step()  # type: ignore[operator]
        started = time.perf_counter()
        for _ in range(repeats):
            step()  # type: ignore[operator]
        return (time.perf_counter() - started) / repeats

    rng = np.random.default_rng(0)
    grids = (rng.random((32, 32, 32, 32, 1)) > 0.7).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, 32)]
    results = {}
    for key, arch in (("vrn_step", "vrn"), ("voxnet_step", "voxnet")):
        preset = {"width": 0.25, "blocks_per_stage": 1} if arch == "vrn" else {}
        model = build_classifier(ClassifierConfig(arch=arch, input_shape=(32, 32, 32), n_classes=10, **preset))
        model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
        results[key] = timed(lambda m=model: m.train_on_batch(grids, labels))
    unet = build_denoiser(dataclasses.replace(TrainConfig().model, filters=12, kernel=(3, 3, 3)))
    unet.compile(optimizer="adam", loss="mse", jit_compile=False)
    patches = rng.random((4, 48, 48, 32, 1)).astype("float32")
    results["unet_step"] = timed(lambda: unet.train_on_batch(patches, patches))
    sample = load_volume(resource_path("sample", "raw", "val.mat"))
    results["denoise"] = timed(lambda: denoise_volume(sample))
    return results


def child(threads: int, repeats: int) -> None:
    import tensorflow as tf  # the parent set TF_ENABLE_ONEDNN_OPTS for this process

    from voxelstudio.ml import backend

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    print(json.dumps({"onednn": backend.tensorflow_onednn(), **measure(repeats)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="one repeat instead of three")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    if args.child:
        child(args.threads, repeats)
        return
    runs = {}
    for setting in SETTINGS:
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": setting, "TF_CPP_MIN_LOG_LEVEL": "3"}
        command = [sys.executable, __file__, "--child", "--threads", str(args.threads), *(["--quick"] * args.quick)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        runs[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    off, on = runs["0"], runs["1"]
    print(f"{args.threads} TensorFlow thread(s); oneDNN reported off: {off['onednn']}, on: {on['onednn']}\n")
    print("| operation | oneDNN off (s) | oneDNN on (s) | speed-up |")
    print("|---|---:|---:|---:|")
    for key, label in ROWS:
        print(f"| {label} | {off[key]:.2f} | {on[key]:.2f} | {off[key] / on[key]:.1f}x |")


if __name__ == "__main__":
    main()
