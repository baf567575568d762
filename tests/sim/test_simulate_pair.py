"""simulate_pair: reproducibility, target blobs, raw elongation, haze, background and camera statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import maximum_filter

from voxelstudio.sim import OpticsParams, SimParams, simulate_pair

SHAPE = (96, 96, 48)
# no light but the beads' own: no background, haze, camera noise or beads outside the stack
QUIET = SimParams(background=0.0, haze=0.0, read_noise=0.0, photons=5000.0, offset=0.0, out_of_stack=0.0)


def fwhm(profile: np.ndarray) -> float:
    """Full width at half maximum of a background-subtracted 1-D profile, by linear interpolation (voxels)."""
    profile = np.asarray(profile, dtype=np.float64)
    peak = int(np.argmax(profile))
    half = profile[peak] / 2.0
    left = right = peak
    while left > 0 and profile[left - 1] > half:
        left -= 1
    while right < profile.size - 1 and profile[right + 1] > half:
        right += 1
    if left == 0 or right == profile.size - 1:
        return float("nan")
    x_left = left - (profile[left] - half) / (profile[left] - profile[left - 1])
    x_right = right + (profile[right] - half) / (profile[right] - profile[right + 1])
    return float(x_right - x_left)


def isolated_beads(target: np.ndarray, distance: int = 8, margin: tuple[int, int, int] = (20, 20, 12)) -> np.ndarray:
    """Centres of target beads with no other bead nearby (3x further axially) and away from the borders."""
    peaks = np.argwhere((target == maximum_filter(target, size=3)) & (target > 0.5))
    keep = []
    for p in peaks:
        inside = all(margin[a] <= p[a] < target.shape[a] - margin[a] for a in range(3))
        d = np.abs(peaks - p)
        alone = ((d[:, 0] < distance) & (d[:, 1] < distance) & (d[:, 2] < 3 * distance)).sum() == 1
        if inside and alone:
            keep.append(p)
    return np.array(keep)


def bead_fwhm(volume: np.ndarray, centre: np.ndarray, half: int = 10) -> tuple[float, float]:
    """(lateral, axial) FWHM in voxels through the bead at ``centre`` after subtracting the local background (the
    per-plane median of a ring 15-20 voxels around it)."""
    y, x, _ = centre
    yy, xx = np.mgrid[-2 * half : 2 * half + 1, -2 * half : 2 * half + 1]
    ring = (np.hypot(yy, xx) >= 1.5 * half) & (np.hypot(yy, xx) <= 2 * half)
    window = volume[y - 2 * half : y + 2 * half + 1, x - 2 * half : x + 2 * half + 1, :].astype(np.float64)
    background = np.median(window[ring], axis=0)
    axial = volume[y, x, :] - background
    z = int(np.argmax(axial))
    return fwhm(volume[y - half : y + half + 1, x, z] - background[z]), fwhm(axial)


def median_widths(volume: np.ndarray, beads: np.ndarray) -> tuple[float, float]:
    widths = np.array([bead_fwhm(volume, c) for c in beads])
    return float(np.nanmedian(widths[:, 0])), float(np.nanmedian(widths[:, 1]))


def test_pair_shapes_dtypes_and_target_range() -> None:
    raw, target = simulate_pair((40, 36, 12), SimParams(), seed=1)
    assert raw.shape == target.shape == (40, 36, 12)
    assert raw.dtype == target.dtype == np.float32
    assert target.min() == 0.0
    assert target.max() == pytest.approx(1.0)


def test_same_seed_same_pair_and_different_seeds_differ() -> None:
    first = simulate_pair((48, 48, 16), SimParams(), seed=11)
    again = simulate_pair((48, 48, 16), SimParams(), seed=11)
    other = simulate_pair((48, 48, 16), SimParams(), seed=12)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    assert not np.array_equal(first[0], other[0])


def test_bead_count_follows_the_density() -> None:
    density, shape = 3e-4, (128, 128, 32)
    _, target = simulate_pair(shape, SimParams(bead_density=density), seed=2)
    expected = density * np.prod(shape)
    count = int(((target == maximum_filter(target, size=3)) & (target > 0.5)).sum())
    assert abs(count - expected) < 4 * np.sqrt(expected) + 0.05 * expected  # overlaps merge a few beads


def test_raw_beads_are_axially_elongated_in_voxels_and_targets_are_isotropic() -> None:
    raw, target = simulate_pair(SHAPE, SimParams(), seed=3)
    beads = isolated_beads(target)
    assert len(beads) >= 4
    raw_lateral, raw_axial = median_widths(raw, beads)
    target_lateral, target_axial = median_widths(target, beads)
    assert raw_axial / raw_lateral > 1.5
    assert target_axial / target_lateral == pytest.approx(1.0, abs=0.1)
    assert target_lateral == pytest.approx(2.45, abs=0.1)  # sigma 1 voxel: 2.355 continuous, 2.45 sampled
    assert raw_lateral > target_lateral  # the PSF also blurs laterally


def test_isolated_bead_peaks_at_photons_times_brightness() -> None:
    raw, target = simulate_pair(SHAPE, QUIET.replace(brightness_spread=0.5), seed=4)
    beads = isolated_beads(target)
    assert len(beads) >= 4
    ratios = []
    for y, x, z in beads:
        peak = raw[y - 2 : y + 3, x - 2 : x + 3, :].max() / QUIET.photons  # the column's noisiest voxel: biased up
        assert 0.5 - 0.01 <= target[y, x, z] <= 1.0
        ratios.append(peak / target[y, x, z])
    assert np.all(np.abs(np.array(ratios) - 1.0) < 0.1) and abs(np.median(ratios) - 1.0) < 0.05


def test_one_overlap_does_not_dim_the_other_beads() -> None:
    """Overlapping blobs above 1 are clipped where they overlap; dividing the whole volume by its peak instead put
    the isolated beads of most dense volumes at 0.6-0.8 of their brightness, in the target and the raw."""
    params = QUIET.replace(bead_density=5e-4)
    for seed in range(3):
        raw, target = simulate_pair((96, 96, 32), params, seed=seed)
        assert target.max() == 1.0
        beads = isolated_beads(target, distance=5, margin=(8, 8, 8))
        assert len(beads) >= 3
        np.testing.assert_allclose([target[tuple(b)] for b in beads], 1.0, atol=1e-3)
        peaks = [raw[y - 1 : y + 2, x - 1 : x + 2, z - 3 : z + 4].max() / params.photons for y, x, z in beads]
        assert np.median(peaks) > 0.97  # (above 1 by the light of the dense neighbours' PSFs)


def test_haze_adds_its_mean_level() -> None:
    without, _ = simulate_pair(SHAPE, QUIET, seed=5)
    with_haze, _ = simulate_pair(SHAPE, QUIET.replace(haze=0.4), seed=5)
    assert (with_haze.mean() - without.mean()) / QUIET.photons == pytest.approx(0.4, rel=0.02)


def test_without_beads_mean_and_variance_match_background_shot_and_read_noise() -> None:
    params = SimParams(bead_density=0.0, background=0.5, background_variation=0.0, photons=40.0)
    params = params.replace(read_noise=3.0, offset=100.0)
    raw, target = simulate_pair((64, 64, 32), params, seed=6)
    assert not target.any()
    level = params.photons * params.background  # 20 photo-electrons per voxel
    assert raw.mean() == pytest.approx(params.offset + level, abs=0.1)
    assert raw.var() == pytest.approx(level + params.read_noise**2, rel=0.03)


def test_background_varies_smoothly_around_its_level() -> None:
    params = SimParams(bead_density=0.0, background=0.5, background_variation=0.6, photons=5000.0, read_noise=0.0)
    raw, _ = simulate_pair((128, 128, 16), params.replace(offset=0.0), seed=7)
    level = raw / params.photons
    assert level.mean() == pytest.approx(0.5, rel=0.01)
    assert level.min() > 0.5 * (1 - 0.6) - 0.05
    assert level.max() < 0.5 * (1 + 0.6) + 0.05
    assert level.max() - level.min() > 0.3  # it really varies ...
    assert np.abs(np.diff(level, axis=0)).mean() < 0.02  # ... slowly (shot noise dominates neighbour steps)


def test_higher_na_gives_shorter_raw_beads() -> None:
    axial_widths = []
    for na in (1.0, 1.4):
        optics = OpticsParams(na=na, ns=1.515, depth_um=0.0)
        raw, target = simulate_pair(SHAPE, QUIET.replace(optics=optics), seed=8)
        axial_widths.append(median_widths(raw, isolated_beads(target))[1])
    assert axial_widths[0] > 1.3 * axial_widths[1]


def test_bad_shape_and_params_raise_value_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        simulate_pair((32, 32), SimParams())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        simulate_pair((32, 0, 8), SimParams())
    with pytest.raises(ValueError, match="params must be SimParams"):
        simulate_pair((32, 32, 8), {"photons": 3})  # type: ignore[arg-type]
