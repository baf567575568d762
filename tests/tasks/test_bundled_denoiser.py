"""The shipped denoiser file, for real: it loads and cleans the bundled sample (raw F1 is 0.99 there already:
PSNR and the elongation are what tell a working model from a broken one)."""

from __future__ import annotations

import pytest

from voxelstudio.core.resources import sample_pair_paths
from voxelstudio.io import load_volume
from voxelstudio.tasks.denoise import default_model_path, denoise_volume
from voxelstudio.tasks.evaluate import evaluate_volumes


@pytest.fixture(scope="module")
def scores() -> dict:
    raw_path, target_path = sample_pair_paths()
    raw, target = load_volume(raw_path), load_volume(target_path)
    result = denoise_volume(raw)  # no model given: the bundled one
    assert result.prediction.shape == raw.shape
    return evaluate_volumes(result.prediction, target, raw)


def test_the_bundled_model_is_the_default_and_loads() -> None:
    from voxelstudio.ml.persistence import load_model

    loaded = load_model(default_model_path())
    assert loaded.train_config.model.arch == "unet"
    assert default_model_path().stat().st_size < 16e6  # issue 13: small enough to ship and bring back


def test_the_bundled_model_finds_the_sample_beads(scores: dict) -> None:
    assert scores["pred"]["f1"] >= 0.95


def test_the_bundled_model_cleans_the_sample(scores: dict) -> None:
    pred, raw = scores["pred"], scores["raw"]
    assert pred["psnr"] >= raw["psnr"] + 3.0
    assert pred["ssim"] > raw["ssim"]
    assert pred["fwhm_ratio"] < 0.6 * raw["fwhm_ratio"]  # the axial elongation is mostly gone
