"""The bundled sample made by scripts/make_sample.py: files, shapes, spacing and visible elongated beads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voxelstudio.core.resources import resource_path, sample_pair_paths
from voxelstudio.io import load_volume
from voxelstudio.sim import SimParams, simulate_pair

NAMES = ("train_1", "train_2", "train_3", "train_4", "val")


def test_every_pair_is_present_with_variable_voxel_shape_and_spacing() -> None:
    folder = resource_path("sample")
    for name in NAMES:
        for kind in ("raw", "target"):
            volume = load_volume(folder / kind / f"{name}.mat")
            assert volume.shape == (128, 128, 32)
            assert volume.metadata["variable"] == "voxel"
            assert volume.spacing == pytest.approx((0.1, 0.1, 0.1))
    record = json.loads((folder / "params.json").read_text())
    assert SimParams.from_dict(record["params"]) == SimParams(out_of_stack=0.0)  # made before out-of-stack beads
    assert [p["raw"] for p in record["pairs"]] == [f"raw/{name}.mat" for name in NAMES]
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 6e6


def test_the_recorded_parameters_and_seed_reproduce_the_validation_pair() -> None:
    folder = resource_path("sample")
    record = json.loads((folder / "params.json").read_text())
    (pair,) = [p for p in record["pairs"] if p["raw"] == "raw/val.mat"]
    raw, target = simulate_pair(tuple(record["shape"]), SimParams.from_dict(record["params"]), seed=pair["seed"])
    np.testing.assert_allclose(load_volume(folder / pair["raw"]).data, np.clip(np.round(raw), 0, 65535), atol=2)
    np.testing.assert_allclose(load_volume(folder / pair["target"]).data, target, atol=1e-5)


def test_sample_raw_shows_beads_above_the_haze_and_target_is_black_elsewhere() -> None:
    raw_path, target_path = sample_pair_paths()
    raw, target = load_volume(raw_path).data, load_volume(target_path).data
    assert target.min() == 0.0 and target.max() == pytest.approx(1.0)
    assert np.mean(target == 0) > 0.9
    beads = target > 0.9
    background = raw[target == 0]
    contrast = (np.median(raw[beads]) - np.median(background)) / background.std()
    assert contrast > 2.0
    assert np.array_equal(raw, np.round(raw))  # whole camera counts
