"""Load -> denoise -> export, many times in one process: resident memory and open files stay flat."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.tasks.denoise import denoise_files

MIB = float(1 << 20)
FORMATS = ("mat", "tif", "npy")  # each cycle exports with the next writer


def run_cycles(model, folder, cycles: int) -> tuple[list[float], list[int]]:
    """RSS (MiB) and open file descriptors after each load -> denoise (model loaded each time) -> export cycle."""
    data = np.random.default_rng(0).random((32, 32, 16)).astype(np.float32)
    source = save_volume(Volume(data, spacing=(0.2, 0.2, 0.5)), folder / "scan.mat")
    process = psutil.Process()
    rss, fds = [], []
    for cycle in range(cycles):
        fmt = FORMATS[cycle % len(FORMATS)]
        (out,) = denoise_files([source], model_path=model, out_dir=folder / "out", fmt=fmt, overwrite=True)
        assert load_volume(out).shape == (32, 32, 16)
        rss.append(process.memory_info().rss / MIB)
        fds.append(process.num_fds())
    return rss, fds


@pytest.mark.parametrize(("cycles", "warm_up"), [(10, 3), pytest.param(100, 5, marks=pytest.mark.slow)])
def test_repeated_denoise_does_not_leak(tiny_model, tmp_path, cycles, warm_up):
    rss, fds = run_cycles(tiny_model, tmp_path, cycles)
    start, end = rss[warm_up - 1], rss[-1]
    assert end - start < 50, f"RSS grew {end - start:.1f} MiB in {cycles - warm_up} cycles: {start:.0f} -> {end:.0f}"
    assert fds[-1] <= fds[warm_up - 1], f"open files grew from {fds[warm_up - 1]} to {fds[-1]}"
    written = sorted(p.name for p in (tmp_path / "out").iterdir())  # overwritten in place, no stray temporaries
    assert written == sorted(f"scan.{fmt}{extra}" for fmt in FORMATS for extra in ("", ".json"))
