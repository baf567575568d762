"""evaluate_pair: one flat dictionary of image, detection and width metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bead_volumes import BeadField

from voxelstudio.metrics import evaluate_pair

FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))


def test_elongated_hazy_prediction_scores_worse_than_a_clean_one(
    bead_field: BeadField, bead_positions: np.ndarray
) -> None:
    target = bead_field(bead_positions, sigma=(1.5, 1.5, 1.5))
    rng = np.random.default_rng(0)
    clean = 4.0 * target + 0.2 + rng.normal(0, 0.01, target.shape)
    elongated = bead_field(bead_positions, sigma=(1.5, 1.5, 4.0)) + 0.3 + rng.normal(0, 0.01, target.shape)

    good, bad = evaluate_pair(clean, target), evaluate_pair(elongated, target)

    assert good["psnr"] > 35 > bad["psnr"]
    assert good["ssim"] > 0.9 > bad["ssim"]
    assert good["nrmse"] < bad["nrmse"]
    assert good["f1"] == 1.0 and good["n_pred"] == good["n_target"] == len(bead_positions)
    assert good["fwhm_ratio"] == pytest.approx(1.0, rel=0.05)
    assert bad["fwhm_ratio"] == pytest.approx(4.0 / 1.5, rel=0.05)
    assert bad["fwhm_axial"] == pytest.approx(FWHM_PER_SIGMA * 4.0, rel=0.05)
    for row in (good, bad):
        assert row["target_fwhm_ratio"] == pytest.approx(1.0, rel=0.03)
        assert row["target_fwhm_lateral"] == pytest.approx(FWHM_PER_SIGMA * 1.5, rel=0.03)
        assert row["target_fwhm_n"] >= 8


def test_keys_and_physical_units(bead_field: BeadField, bead_positions: np.ndarray) -> None:
    target = bead_field(bead_positions, sigma=(1.5, 1.5, 1.5))
    result = evaluate_pair(target, target, spacing=(0.1, 0.1, 0.3))
    assert set(result) == {
        "psnr", "ssim", "nrmse", "precision", "recall", "f1", "n_pred", "n_target",
        "fwhm_lateral", "fwhm_axial", "fwhm_ratio", "fwhm_n",
        "target_fwhm_lateral", "target_fwhm_axial", "target_fwhm_ratio", "target_fwhm_n",
    }  # fmt: skip
    assert result["psnr"] > 200
    assert result["fwhm_lateral"] == pytest.approx(FWHM_PER_SIGMA * 0.15, rel=0.03)
    assert result["fwhm_axial"] == pytest.approx(FWHM_PER_SIGMA * 0.45, rel=0.03)
    assert result["fwhm_ratio"] == pytest.approx(3.0, rel=0.03)


def test_a_false_bead_beside_a_real_one_keeps_that_one_out_of_the_widths(
    bead_field: BeadField, bead_positions: np.ndarray
) -> None:
    target = bead_field(bead_positions, sigma=(1.5, 1.5, 1.5))
    y, x, z = bead_positions[0]
    false_bead = bead_field(np.array([[y, x + 5, z]]), sigma=(1.5, 1.5, 1.5))
    result = evaluate_pair(target + false_bead, target)
    assert result["n_pred"] == len(bead_positions) + 1 and result["recall"] == 1.0
    assert result["fwhm_n"] == result["target_fwhm_n"] - 1
    assert result["fwhm_lateral"] == pytest.approx(FWHM_PER_SIGMA * 1.5, rel=0.03)


def test_blank_prediction_has_no_widths_and_zero_recall(bead_field: BeadField, bead_positions: np.ndarray) -> None:
    target = bead_field(bead_positions)
    result = evaluate_pair(np.zeros_like(target), target)
    assert (result["recall"], result["f1"], result["n_pred"]) == (0.0, 0.0, 0)
    assert result["fwhm_ratio"] is None and result["fwhm_n"] == 0
    assert not any(isinstance(v, float) and math.isnan(v) for v in result.values())


def test_shape_mismatch_is_refused(bead_field: BeadField, bead_positions: np.ndarray) -> None:
    target = bead_field(bead_positions)
    with pytest.raises(ValueError, match="shape"):
        evaluate_pair(target[:, :, :-1], target)
