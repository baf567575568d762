"""Bead finding, one-to-one matching and detection scores on fields with known bead positions."""

from __future__ import annotations

import numpy as np
import pytest
from bead_volumes import BeadField

from voxelstudio.metrics import bead_detection_scores, find_beads, match_beads


def _same_points(found: np.ndarray, expected: np.ndarray) -> bool:
    return {tuple(p) for p in found.tolist()} == {tuple(p) for p in expected.tolist()}


def test_finds_every_bead_at_its_voxel(bead_field: BeadField, bead_positions: np.ndarray) -> None:
    found = find_beads(bead_field(bead_positions))
    assert found.shape == (len(bead_positions), 3)
    assert found.dtype.kind == "i"
    assert _same_points(found, bead_positions)


def test_finds_beads_on_offset_ramp_haze_and_noise(bead_field: BeadField, bead_positions: np.ndarray) -> None:
    y, x, z = np.indices((48, 48, 24), dtype=np.float64)
    haze = 100.0 + 0.02 * y - 0.015 * x + 0.03 * z + 0.4 * np.exp(-((y - 10) ** 2 + (x - 30) ** 2) / 800)
    noise = np.random.default_rng(0).normal(0, 0.03, haze.shape)
    found = find_beads(bead_field(bead_positions, sigma=(1.5, 1.5, 3.0)) + haze + noise)
    assert len(found) == len(bead_positions)
    tp, fp, fn = match_beads(found, bead_positions, max_distance=1.5)
    assert (tp, fp, fn) == (len(bead_positions), 0, 0)


def test_flat_and_pure_noise_volumes_have_no_beads() -> None:
    assert find_beads(np.full((24, 24, 12), 3.0)).shape == (0, 3)
    noise = np.random.default_rng(1).normal(10, 1, (48, 48, 24))
    assert len(find_beads(noise)) <= 1


def test_dim_beads_below_the_relative_threshold_are_ignored(bead_field: BeadField, bead_positions: np.ndarray) -> None:
    volume = bead_field(bead_positions[:6]) + 0.1 * bead_field(bead_positions[6:])
    assert _same_points(find_beads(volume, threshold_rel=0.3), bead_positions[:6])
    everything = find_beads(volume, threshold_rel=0.05)
    assert len(everything) == len(bead_positions)
    assert _same_points(everything[:6], bead_positions[:6])  # brightest first


def test_matching_is_one_to_one_within_the_distance() -> None:
    truth = np.array([[10, 10, 5], [20, 20, 5], [30, 30, 5]])
    found = np.array([[11, 10, 5], [10, 11, 5], [20, 22, 5], [40, 40, 5]])
    # one of the two finds near the first bead is a false positive; the far one too; the third bead is missed
    assert match_beads(found, truth, max_distance=2.5) == (2, 2, 1)
    assert match_beads(found, truth, max_distance=1.5) == (1, 3, 2)
    assert match_beads(np.empty((0, 3)), truth, 3.0) == (0, 0, 3)
    assert match_beads(found, np.empty((0, 3)), 3.0) == (0, 4, 0)


def test_matching_prefers_more_matches_over_shorter_distances() -> None:
    truth = np.array([[0.0, 0, 0], [2.0, 0, 0]])
    found = np.array([[1.0, 0, 0], [3.0, 0, 0]])
    # greedy nearest would pair found[0] with truth[1] (tie) or leave one unmatched; Hungarian matches both
    assert match_beads(found, truth, max_distance=1.0) == (2, 0, 0)
    # found[0] is nearest truth[1]; taken greedily, found[1] is left with nothing within reach: (1, 1, 1)
    assert match_beads(np.array([[1.0, 0, 0], [2.8, 0, 0]]), np.array([[0.0, 0, 0], [1.9, 0, 0]]), 1.0) == (2, 0, 0)
    # the assignment of least total distance (unpriced by the limit) matches only one pair here
    found, truth = np.array([[3.9, 0, 0], [2.4, 0, 0], [1.3, 0, 0]]), np.array([[0.8, 0, 0], [2.7, 0, 0], [0.8, 0, 0]])
    assert match_beads(found, truth, max_distance=1.0)[0] == 2


def test_scores_all_found_and_half_missing(bead_field: BeadField, bead_positions: np.ndarray) -> None:
    target = bead_field(bead_positions)
    perfect = bead_detection_scores(2.0 * target + 1.0, target)
    assert perfect == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "n_pred": 12, "n_target": 12}
    half = bead_detection_scores(bead_field(bead_positions[::2]), target)
    assert half["recall"] == pytest.approx(0.5)
    assert half["precision"] == pytest.approx(1.0)
    assert half["f1"] == pytest.approx(2 / 3)
    extra = bead_detection_scores(target, bead_field(bead_positions[::2]))
    assert (extra["precision"], extra["recall"]) == (pytest.approx(0.5), pytest.approx(1.0))


def test_scores_use_physical_distances_with_spacing(bead_field: BeadField, bead_positions: np.ndarray) -> None:
    target = bead_field(bead_positions)
    shifted_in_z = bead_field(bead_positions + np.array([0, 0, 2]))
    # 2 slices is within 3 voxels; at 0.1 um lateral and 0.5 um axial spacing it is 1 um, beyond 1.5 x 0.5 um
    assert bead_detection_scores(shifted_in_z, target)["f1"] == 1.0
    assert bead_detection_scores(shifted_in_z, target, spacing=(0.1, 0.1, 0.5))["f1"] == 0.0
    assert bead_detection_scores(shifted_in_z, target, spacing=(0.1, 0.1, 0.5), max_distance=1.2)["f1"] == 1.0
    # one plane off along a z step coarser than the 0.3-um default still matches: every axis allows 1.5 of its
    # own voxels (0.75 um here), so a coarse z step does not turn half-plane errors into misses
    one_plane = bead_field(bead_positions + np.array([0, 0, 1]))
    assert bead_detection_scores(one_plane, target, spacing=(0.1, 0.1, 0.5))["f1"] == 1.0
    four_pixels = bead_field(bead_positions + np.array([0, 4, 0]))  # laterally the default stays 3 x 0.1 um
    assert bead_detection_scores(four_pixels, target, spacing=(0.1, 0.1, 0.5))["f1"] == 0.0


def test_empty_volumes_score_by_convention() -> None:
    blank = np.zeros((16, 16, 8))
    assert bead_detection_scores(blank, blank) == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "n_pred": 0,
        "n_target": 0,
    }
