"""Regenerate the bundled shapes sample: resources/shapes/<class>/<class>_NNNN.mat, 6 per class of the 10 classes.

32^3 occupancy grids in variable ``voxel`` (compressed MAT v5: about 1 KB each, so the whole sample stays far below
1 MB, where uint8 .npy would take 2 MB). The seed differs from the one the bundled classifier is trained with, so
the sample doubles as a small test set. Run from the repository root:

    python scripts/make_shapes_sample.py            # or: --out some/folder --per-class 6 --seed 2024
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from voxelstudio.tasks.datasets import write_shapes_dataset

SEED = 2024
PER_CLASS = 6
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "resources" / "shapes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    paths = write_shapes_dataset(args.out, per_class=args.per_class, seed=args.seed, size=32, fmt="mat")
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} grids ({size / 1024:.0f} KiB) to {args.out}")


if __name__ == "__main__":
    main()
