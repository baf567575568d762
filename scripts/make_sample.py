"""Regenerate the bundled sample: resources/sample/{raw,target}/{train_1..train_4,val}.mat and params.json.

Five 128x128x32 pairs (the original code's crop size: four for training, one for validation) simulated with the
default SimParams but without out-of-stack beads (the sample predates them; pinned so that it stays reproducible and
the results recorded on it stay valid), each from its own seed. Raw volumes are rounded to whole camera counts, as a
camera delivers them (they compress to a quarter of the size); targets are float32 in [0, 1]. Run from the repository
root:

    python scripts/make_sample.py            # or: --out some/folder --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from voxelstudio import __version__
from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume
from voxelstudio.sim import SimParams, simulate_pair
from voxelstudio.tasks.simulate import VARIABLE, pair_seed

NAMES = ("train_1", "train_2", "train_3", "train_4", "val")
SHAPE = (128, 128, 32)
SEED = 2024
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "resources" / "sample"


def make_sample(out: Path, seed: int = SEED) -> list[Path]:
    """Write the sample pairs and params.json into ``out``; returns the written volume paths."""
    params = SimParams(out_of_stack=0.0)
    spacing = params.optics.voxel_size_um
    (out / "raw").mkdir(parents=True, exist_ok=True)
    (out / "target").mkdir(parents=True, exist_ok=True)
    written, pairs = [], []
    for index, name in enumerate(NAMES):
        this_seed = pair_seed(seed, index)
        raw, target = simulate_pair(SHAPE, params, seed=this_seed)
        counts = np.clip(np.round(raw), 0, 65535)
        for folder, data in (("raw", counts), ("target", target)):
            volume = Volume(data, spacing, name=name)
            written.append(save_volume(volume, out / folder / f"{name}.mat", variable=VARIABLE, overwrite=True))
        pairs.append({"raw": f"raw/{name}.mat", "target": f"target/{name}.mat", "seed": this_seed})
    record = {
        "generator": "scripts/make_sample.py (voxelstudio.sim.simulate_pair)",
        "version": __version__,
        "seed": seed,
        "shape": list(SHAPE),
        "variable": VARIABLE,
        "spacing_um": list(spacing),
        "raw_rounded_to_counts": True,
        "params": params.to_dict(),
        "pairs": pairs,
    }
    temporary = out / ".params.json.tmp"
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, out / "params.json")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder [default {DEFAULT_OUT}]")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed [default {SEED}]")
    args = parser.parse_args()
    for path in make_sample(args.out, args.seed):
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
