"""simulate_dataset: files, params.json, reproducibility, progress and cancellation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from voxelstudio.core.errors import Cancelled, VolumeWriteError
from voxelstudio.core.progress import CancelToken, Progress
from voxelstudio.io import load_volume
from voxelstudio.sim import OpticsParams, SimParams, simulate_pair
from voxelstudio.tasks.simulate import pair_seed, simulate_dataset

SHAPE = (24, 20, 8)


def test_writes_raw_and_target_mat_files_and_params_json(tmp_path: Path) -> None:
    params = SimParams(optics=OpticsParams(pixel_um=0.08, z_step_um=0.2), bead_density=5e-4)
    progress: list[Progress] = []
    pairs = simulate_dataset(tmp_path, count=3, seed=4, shape=SHAPE, params=params, report=progress.append)

    assert [(r.relative_to(tmp_path), t.relative_to(tmp_path)) for r, t in pairs] == [
        (Path(f"raw/00{i}.mat"), Path(f"target/00{i}.mat")) for i in (1, 2, 3)
    ]
    raw, target = load_volume(pairs[1][0]), load_volume(pairs[1][1])
    assert raw.shape == target.shape == SHAPE
    assert raw.spacing == target.spacing == pytest.approx((0.08, 0.08, 0.2))
    assert raw.metadata["variable"] == target.metadata["variable"] == "voxel"
    expected_raw, expected_target = simulate_pair(SHAPE, params, seed=pair_seed(4, 1))
    np.testing.assert_array_equal(raw.data, expected_raw)
    np.testing.assert_array_equal(target.data, expected_target)

    record = json.loads((tmp_path / "params.json").read_text())
    assert record["seed"] == 4 and record["shape"] == list(SHAPE) and record["version"]
    assert [p["raw"] for p in record["pairs"]] == ["raw/001.mat", "raw/002.mat", "raw/003.mat"]
    assert record["pairs"][1]["seed"] == pair_seed(4, 1)
    assert SimParams.from_dict(record["pairs"][2]["params"]) == params
    assert [p.done for p in progress] == [0, 1, 2, 3]
    assert all(p.total == 3 for p in progress)


def test_pair_seeds_are_distinct_and_independent_of_count(tmp_path: Path) -> None:
    seeds = {pair_seed(0, i) for i in range(50)}
    assert len(seeds) == 50
    few = simulate_dataset(tmp_path / "a", count=1, seed=9, shape=SHAPE)
    many = simulate_dataset(tmp_path / "b", count=2, seed=9, shape=SHAPE)
    np.testing.assert_array_equal(load_volume(few[0][0]).data, load_volume(many[0][0]).data)
    assert not np.array_equal(load_volume(many[0][0]).data, load_volume(many[1][0]).data)


def test_randomize_draws_different_valid_params_per_pair(tmp_path: Path) -> None:
    simulate_dataset(tmp_path, count=2, seed=1, shape=SHAPE, randomize=True)
    record = json.loads((tmp_path / "params.json").read_text())
    drawn = [SimParams.from_dict(p["params"]) for p in record["pairs"]]
    assert record["randomize"] is True
    assert drawn[0] != drawn[1] and SimParams() not in drawn
    spacing = load_volume(tmp_path / "raw" / "002.mat").spacing
    assert spacing == pytest.approx(drawn[1].optics.voxel_size_um)


def test_cancel_between_pairs_keeps_what_was_written(tmp_path: Path) -> None:
    token = CancelToken()

    def cancel_after_first(progress: Progress) -> None:
        if progress.done == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        simulate_dataset(tmp_path, count=3, seed=0, shape=SHAPE, report=cancel_after_first, cancel=token)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["001.mat"]
    assert len(json.loads((tmp_path / "params.json").read_text())["pairs"]) == 1


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    """A second set into the same folder joined the first (its pairs renamed 0001.mat once counts passed 999, the
    same seeds: duplicates, in training and validation alike); --overwrite with fewer pairs left the old ones."""
    simulate_dataset(tmp_path, count=2, seed=0, shape=SHAPE)
    (tmp_path / "raw" / "notes.txt").write_text("mine")
    with pytest.raises(VolumeWriteError, match="already holds a simulated data set; pass --overwrite"):
        simulate_dataset(tmp_path, count=1, seed=1, shape=SHAPE)
    first = load_volume(tmp_path / "raw" / "001.mat").data
    np.testing.assert_array_equal(first, simulate_pair(SHAPE, SimParams(), seed=pair_seed(0, 0))[0])  # kept
    simulate_dataset(tmp_path, count=1, seed=1, shape=SHAPE, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["001.mat", "notes.txt"]  # the old set is gone
    assert sorted(p.name for p in (tmp_path / "target").iterdir()) == ["001.mat"]
    expected_raw, expected_target = simulate_pair(SHAPE, SimParams(), seed=pair_seed(1, 0))
    np.testing.assert_array_equal(load_volume(tmp_path / "raw" / "001.mat").data, expected_raw)
    np.testing.assert_array_equal(load_volume(tmp_path / "target" / "001.mat").data, expected_target)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "count must be a positive integer"),
        ({"count": 1, "seed": -1}, "seed must be a non-negative integer"),
        ({"count": 1, "shape": (8, 8)}, "shape must be three positive integers"),
        ({"count": 1, "params": {"photons": 1}}, "params must be SimParams"),
    ],
)
def test_bad_arguments_raise_value_error_before_writing(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate_dataset(tmp_path / "out", **{"shape": SHAPE, **kwargs})
    assert not (tmp_path / "out").exists()


def test_a_volume_too_big_for_memory_is_refused_before_any_folder(tmp_path: Path, monkeypatch) -> None:
    import psutil

    from voxelstudio.core.errors import VoxelStudioError
    from voxelstudio.tasks import simulate

    available = simulate.BYTES_PER_VOXEL * int(np.prod(SHAPE)) - 1
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("Memory", (), {"available": available})())
    with pytest.raises(VoxelStudioError, match=r"simulating a 24x20x8 volume needs about .* GiB of memory"):
        simulate_dataset(tmp_path / "out", count=1, shape=SHAPE)
    assert not (tmp_path / "out").exists()


def test_a_failure_before_the_first_pair_leaves_no_empty_folders(tmp_path: Path, monkeypatch) -> None:
    from voxelstudio.tasks import simulate

    def fail(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(simulate, "simulate_pair", fail)
    with pytest.raises(MemoryError):
        simulate_dataset(tmp_path / "out", count=2, shape=SHAPE)
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_file_is_refused_up_front(tmp_path: Path) -> None:
    from voxelstudio.core.errors import VolumeWriteError

    (tmp_path / "file").write_text("x")
    with pytest.raises(VolumeWriteError, match=r"file: is a file, not a folder$"):
        simulate_dataset(tmp_path / "file", count=1, shape=SHAPE)
    with pytest.raises(VolumeWriteError, match=r"sub: cannot be a folder \(its parent .*file is a file\)$"):
        simulate_dataset(tmp_path / "file" / "sub", count=1, shape=SHAPE)


@pytest.mark.parametrize("blocker", ["raw", "params.json"])
def test_an_output_that_cannot_be_written_is_refused_before_the_first_pair(tmp_path: Path, blocker: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if blocker == "raw":
        (out / "raw").write_text("a file where the raw/ folder goes")
    else:
        (out / "params.json").mkdir()
    with pytest.raises(VolumeWriteError, match=blocker):
        simulate_dataset(out, count=2, seed=0, shape=SHAPE)
    assert sorted(p.name for p in out.iterdir()) == [blocker]
