"""``voxelstudio train-classifier``: bad data sets give one line and exit 2; presets are chosen from the device
kind and recorded in the model file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import pytest

from voxelstudio import cli


def _grid(size: int = 16, value: float = 1.0) -> np.ndarray:
    grid = np.zeros((size,) * 3, np.float32)
    grid[4:12, 4:12, 4:12] = value
    return grid


def _folder(root: Path, layout: dict[str, list[np.ndarray]]) -> Path:
    for name, grids in layout.items():
        (root / name).mkdir(parents=True)
        for index, grid in enumerate(grids):
            np.save(root / name / f"g{index}.npy", grid)
    return root


NOISY = _grid() * np.linspace(0.2, 1.0, 16, dtype=np.float32)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"a": [_grid()] * 3, "b": []}, "b: class folder holds no grid files"),
        ({"a": [_grid()] * 3}, "only one class (a); a classifier needs at least two"),
        ({"a": [_grid()] * 3, "b": [_grid(), _grid(), _grid(20)]}, "g2.npy: grid is 20x20x20 but g0.npy is 16x16x16"),
        ({"a": [_grid()] * 3, "b": [_grid(), NOISY, _grid()]}, "g1.npy: grid holds 9 distinct values"),
        ({"a": [_grid()] * 3, "b": [_grid()] * 2}, "classes with fewer than 3 grids: b (2)"),
        ({"a": [_grid() * 0] * 3, "b": [_grid() * 0] * 3}, "every grid is empty (no occupied voxel)"),
    ],
)
def test_bad_data_sets_exit_2_with_one_line(
    layout: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _folder(tmp_path / "data", layout)
    argv = ["train-classifier", str(data), "--size", "16", "--width", "0.125", "--epochs", "1", "--preset", "cpu"]
    assert cli.main([*argv, "--out", str(tmp_path / "m.keras"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("voxelstudio: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "m.keras").exists()


def _args(**overrides) -> argparse.Namespace:
    values = {"arch": "vrn", "preset": "auto", "epochs": None, "minutes": 5.0, "width": None, "lr": None,
              "batch_size": None, "dropout": None, "size": 32, "no_augment": False, "seed": 0, "search": 0,
              "resume": False, "val_fraction": 0.1, "test_fraction": 0.0, "refit": False,
              "orientation": "upright"}  # fmt: skip
    return argparse.Namespace(**{**values, **overrides})


@pytest.mark.parametrize(("kind", "preset", "width", "batch"), [("GPU", "gpu", 1.0, 50), ("CPU", "cpu", 0.25, 32)])
def test_auto_preset_follows_the_device_kind(monkeypatch, kind: str, preset: str, width: float, batch: int) -> None:
    from voxelstudio.cli.classify_commands import train_config_from_args
    from voxelstudio.ml import device

    monkeypatch.setattr(device, "configure_devices", lambda **_: device.DeviceInfo(kind, ("test",), 1))
    config = train_config_from_args(_args())
    assert (config.preset, config.model.width, config.batch_size) == (preset, width, batch)
    explicit = train_config_from_args(_args(width=0.5, batch_size=8))  # options win over the preset
    assert (explicit.preset, explicit.model.width, explicit.batch_size) == (preset, 0.5, 8)
    assert train_config_from_args(_args(preset="none")).preset is None
    assert train_config_from_args(_args(orientation="any")).model.orientation == "any"


def test_preset_and_refit_are_recorded_in_the_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voxelstudio.ml.classifiers import load_classifier

    data = _folder(tmp_path / "data", {"a": [_grid()] * 4, "b": [_grid(16, 0.0)] * 4})
    out = tmp_path / "m.keras"
    argv = ["train-classifier", str(data), "--size", "16", "--width", "0.125", "--epochs", "2", "--preset", "cpu"]
    assert cli.main([*argv, "--refit", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "data: 2 classes, 8 grids (train 6, validation 2, test 0)" in printed
    assert "preset: cpu (width 0.125, batch 32, adam lr 0.001, cosine schedule)" in printed and "refit on" in printed
    config = load_classifier(out).train_config
    assert config.preset == "cpu" and config.refit and config.optimizer == "adam" and config.schedule == "cosine"
