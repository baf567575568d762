"""Bead averaging: sub-voxel registration is exact on shifted synthetic beads; selection rules and errors."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.metrics.bead_average import average_beads, register_and_average, select_beads

SIGMA = np.array([1.5, 1.5, 3.0])


def _gaussian(shape: tuple[int, ...], centre: np.ndarray, height: float = 100.0) -> np.ndarray:
    grid = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    return height * np.exp(-sum((g - c) ** 2 / (2 * s**2) for g, c, s in zip(grid, centre, SIGMA, strict=True)))


def _scan(centres: list[np.ndarray], shape: tuple[int, int, int] = (96, 96, 48)) -> np.ndarray:
    return 10.0 + sum(_gaussian(shape, c) for c in centres)


def test_registration_is_sub_voxel_exact_on_a_shifted_bead() -> None:
    box = (13, 13, 21)
    centre = np.array([6.0, 6.0, 10.0])
    shifts = [np.array([0.3, -0.45, 0.2]), np.array([-0.25, 0.1, -0.4]), np.zeros(3), np.array([0.45, 0.35, 0.45])]
    crops = [_gaussian(box, centre + s) for s in shifts]
    average, found, amplitudes = register_and_average(crops)
    # each crop is moved onto the first pass's reference: the relative shifts are recovered to 1/50 voxel
    relative = found - found[2]
    np.testing.assert_allclose(relative, -np.array(shifts), atol=0.03)
    # averaging did not blur the bead: it equals one bead at the common position
    reference = _gaussian(box, centre + found[2])
    np.testing.assert_allclose(average, reference, atol=0.5)
    np.testing.assert_allclose(amplitudes, 1.0, atol=0.01)


def test_average_beads_pools_isolated_beads_and_locates_them() -> None:
    rng = np.random.default_rng(1)
    centres = [np.array([y, x, 24.0]) + rng.uniform(-0.5, 0.5, 3) for y in (16, 48, 80) for x in (16, 48, 80)]
    result = average_beads([_scan(centres)], (6, 6, 10))
    assert len(result.amplitudes) == 9 and result.n_found == 9
    assert result.image.max() == pytest.approx(100.0, rel=0.01)  # sharp: registered before averaging
    truth = np.array(centres)
    offsets = []
    for found in result.centres:
        candidates = truth - found
        offsets.append(candidates[np.argmin(np.linalg.norm(candidates, axis=1))])
    # every bead is located up to one common offset (the reference's place in its box) and the registration error
    assert np.ptp(np.array(offsets), axis=0).max() < 0.1


def test_select_beads_rejects_border_crowded_and_saturated_beads() -> None:
    scan = _scan([np.array([40.0, 40.0, 24.0]), np.array([3.0, 40.0, 24.0]), np.array([70.0, 20.0, 24.0]),
                  np.array([74.0, 22.0, 24.0])])  # fmt: skip
    peaks = np.array([[40, 40, 24], [3, 40, 24], [70, 20, 24], [74, 22, 24]])
    kept, saturated = select_beads(scan, peaks, (6, 6, 10), None)
    assert kept.tolist() == [[40, 40, 24]] and saturated == 0
    clipped = np.minimum(scan, 80.0)
    kept, saturated = select_beads(clipped, peaks[:1], (6, 6, 10), 80.0)
    assert len(kept) == 0 and saturated == 1


def test_a_dense_sample_falls_back_to_beads_without_a_neighbour_in_their_box() -> None:
    centres = [np.array([y, x, 24.0]) for y in (20, 28, 36, 44) for x in (20, 28, 36, 44)]  # 8 voxels apart
    scan = _scan(centres)
    peaks = np.array(centres, dtype=int)
    assert len(select_beads(scan, peaks, (6, 6, 10), None)[0]) == 0  # each has a neighbour within 1.25 half-widths
    assert len(select_beads(scan, peaks, (6, 6, 10), None, isolation=1.0)[0]) == 16  # but none inside its box
    result = average_beads([scan], (6, 6, 10))
    assert len(result.amplitudes) == 16 and result.n_found == 16


def test_errors_name_the_problem() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no beads found"):
        average_beads([10.0 + rng.standard_normal((64, 64, 32))], (6, 6, 10))
    centres = [np.array([y, x, 24.0]) for y in (16, 48, 80) for x in (16, 48, 80)]
    with pytest.raises(ValueError, match=r"all \d+ isolated beads are saturated"):
        average_beads([np.minimum(_scan(centres), 60.0)], (6, 6, 10))
    with pytest.raises(ValueError, match=r"only 2 usable beads .* of 2 found; need at least 5"):
        average_beads([_scan(centres[:2])], (6, 6, 10))
