"""CARE (CSBDeep) row of ``benchmarks/denoise.py``: train on the benchmark's pairs, predict its test volumes.

Runs in the CARE virtual environment with ``TF_USE_LEGACY_KERAS=1`` (csbdeep needs tf-keras, see denoise.py), on the
data folder that denoise.py wrote. Uses CSBDeep's own defaults (3-D U-Net depth 2, 32 first filters, 3^3 kernels,
MAE, Adam 4e-4, batch 16, per-image percentile normalisation) with the benchmark's wall-clock budget; CSBDeep keeps
the weights of the best validation loss. Volumes are (H, W, Z) in VoxelStudio and ZYX for CSBDeep.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np

import voxelstudio.ml  # noqa: F401  # CARE's TensorFlow gets the oneDNN CPU kernels our models get
from voxelstudio.io import load_volume

PATCH_ZYX = (32, 64, 64)
PATCHES_PER_IMAGE = 128


def zyx(data: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(data, (2, 0, 1)))


def patches(raw_dir: Path, target_dir: Path, names: list[str], per_image: int):
    from csbdeep.data import RawData, create_patches

    raws = [zyx(load_volume(raw_dir / f"{n}.mat").data) for n in names]
    targets = [zyx(load_volume(target_dir / f"{n}.mat").data) for n in names]
    data = RawData.from_arrays(raws, targets, axes="ZYX")
    patch = tuple(min(p, s) for p, s in zip(PATCH_ZYX, raws[0].shape, strict=True))
    x, y, _ = create_patches(data, patch_size=patch, n_patches_per_image=per_image, verbose=False)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--train-dir", type=Path, help="folder with raw/ and target/ pairs [default WORK/train]")
    parser.add_argument("--tests", help="comma-separated test names to predict [default all]")
    parser.add_argument("--name", default="care", help="predictions go to WORK/pred/NAME/, the record to NAME.json")
    args = parser.parse_args()

    from csbdeep.models import CARE, Config
    from tensorflow import keras

    work = args.work
    started = time.perf_counter()
    budget_s = args.minutes * 60

    class TimeBudget(keras.callbacks.Callback):
        """The budget counts training from its first batch, as ours does (patches and model are made before)."""

        def on_train_begin(self, logs=None) -> None:
            self.began = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None) -> None:
            if time.perf_counter() - self.began > budget_s:
                self.model.stop_training = True

    train_dir = args.train_dir or work / "train"
    train_names = sorted(p.stem for p in (train_dir / "raw").glob("*.mat"))
    x, y = patches(train_dir / "raw", train_dir / "target", train_names[:4], PATCHES_PER_IMAGE)
    xv, yv = patches(train_dir / "raw", train_dir / "target", train_names[4:5], PATCHES_PER_IMAGE // 4)
    x, y, xv, yv = (np.moveaxis(a, 1, -1) for a in (x, y, xv, yv))  # (N, C, Z, Y, X) -> channels last
    config = Config("ZYX", n_channel_in=1, n_channel_out=1, train_epochs=100_000, train_steps_per_epoch=50)
    config.train_tensorboard = False
    model = CARE(config, args.name, basedir=str(work / "models"))
    model.prepare_for_training()
    model.callbacks.append(TimeBudget())
    model.train(x, y, validation_data=(xv, yv))
    train_s = time.perf_counter() - started

    out = work / "pred" / args.name
    out.mkdir(parents=True, exist_ok=True)
    names = args.tests.split(",") if args.tests else sorted(json.loads((work / "test" / "settings.json").read_text()))
    times = []
    for name in [names[0], *names]:  # the first call is a warm-up
        raw = load_volume(work / "test" / "raw" / f"{name}.mat")
        tick = time.perf_counter()
        restored = model.predict(zyx(raw.data), axes="ZYX")
        times.append(time.perf_counter() - tick)
        np.save(out / f"{name}.npy", np.transpose(restored, (1, 2, 0)).astype(np.float32))
    record = {
        "train_s": train_s,
        "infer_s": statistics.mean(times[1:]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    (work / "pred" / f"{args.name}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
