"""Tiled prediction (numpy models only; the Keras model case is in test_inference.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage

from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken
from voxelstudio.ml.config import DenoiserConfig
from voxelstudio.ml.tiling import (
    TILE_COST_VOXELS,
    axis_weights,
    choose_tile_shape,
    estimate_memory,
    halve_tile,
    plan_tiles,
    predict_tiled,
)


def box_filter(radius: int):
    """A 'network' with a known reach: a zero-padded mean over a (2r+1)^3 box, like a 'same' convolution."""
    return lambda tile: ndimage.uniform_filter(tile.astype(np.float64), size=2 * radius + 1, mode="constant")


def coverage(shape, tiles) -> np.ndarray:
    counts = np.zeros(shape, dtype=int)
    for tile in tiles:
        counts[tile.slices] += 1
    return counts


@pytest.mark.parametrize(
    ("shape", "tile", "overlap"),
    [((37, 23, 11), (16, 16, 8), (6, 4, 2)), ((64, 64, 32), (32, 32, 32), 8), ((5, 7, 3), (16, 16, 16), 4)],
)
def test_plan_tiles_covers_volume_with_overlap(shape, tile, overlap):
    tiles = plan_tiles(shape, tile, overlap)
    assert coverage(shape, tiles).min() >= 1
    overlaps = (overlap,) * 3 if isinstance(overlap, int) else overlap
    for axis in range(3):
        spans = sorted({(t.start[axis], t.stop[axis]) for t in tiles})
        assert spans[0][0] == 0 and spans[-1][1] == shape[axis]
        for (_, prev_stop), (next_start, _) in itertools.pairwise(spans):
            assert prev_stop - next_start >= overlaps[axis]
    assert all(t.shape == tuple(min(a, b) for a, b in zip(tile, shape, strict=True)) for t in tiles)


def test_plan_tiles_aligns_to_multiple_and_rejects_unpadded():
    tiles = plan_tiles((48, 40, 16), (24, 16, 16), (8, 8, 4), multiple=4)
    assert all(s % 4 == 0 for t in tiles for s in t.start)
    assert coverage((48, 40, 16), tiles).min() >= 1
    flat = plan_tiles((48, 40, 6), (24, 16, 3), (8, 8, 1), multiple=(4, 4, 1))
    assert {t.start[2] for t in flat} == {0, 2, 3} and {t.start[0] for t in flat} == {0, 16, 24}
    with pytest.raises(ValueError, match="multiples of"):
        plan_tiles((47, 40, 16), (24, 16, 16), 8, multiple=4)
    with pytest.raises(ValueError, match="stride"):
        plan_tiles((48, 40, 16), (8, 16, 16), 8)


def test_weights_are_zero_in_margin_and_positive_inside():
    weights = axis_weights(10, 30, 50, overlap=8, margin=2)
    assert weights[:2].max() == 0 and weights[-2:].max() == 0
    assert weights[2:-2].min() > 0 and weights[8:-8].min() == 1.0
    assert np.all(np.diff(weights[:8]) >= 0)
    border = axis_weights(0, 20, 50, overlap=8, margin=2)
    assert border[0] == 1.0 and border[-1] == 0.0


@pytest.mark.parametrize("shape", [(40, 33, 17), (31, 45, 9), (16, 16, 16)])
def test_identity_returns_input(shape):
    volume = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    result = predict_tiled(lambda t: t, volume, tile_shape=(16, 12, 8), overlap=(6, 5, 4), margin=(1, 2, 1))
    np.testing.assert_allclose(result, volume, rtol=1e-6, atol=1e-6)
    assert result.dtype == np.float32


@pytest.mark.parametrize(("shape", "radius"), [((41, 37, 19), 2), ((30, 50, 12), 3)])
def test_tiled_equals_untiled_when_margin_covers_reach(shape, radius):
    volume = np.random.default_rng(2).random(shape).astype(np.float32)
    model = box_filter(radius)
    expected = model(volume)
    overlap = 2 * radius + 3
    tiled = predict_tiled(model, volume, tile_shape=(16, 16, 10), overlap=overlap, margin=radius)
    assert len(plan_tiles(shape, (16, 16, 10), overlap)) > 4
    np.testing.assert_allclose(tiled, expected, rtol=1e-5, atol=1e-6)


def test_too_small_margin_differs_but_stays_smooth():
    volume = np.random.default_rng(3).random((40, 40, 8)).astype(np.float32)
    model = box_filter(3)
    expected = model(volume)
    tiled = predict_tiled(model, volume, tile_shape=(20, 20, 8), overlap=6, margin=0)
    error = np.abs(tiled - expected)
    assert error.max() > 1e-3  # the blend cannot hide that tiles saw zero padding ...
    assert error.max() < np.abs(expected).max()  # ... but it is a blend, not garbage


def test_progress_per_tile_and_cancel_between_tiles():
    volume = np.zeros((32, 32, 8), dtype=np.float32)
    token = CancelToken()
    seen = []

    def report(progress):
        seen.append((progress.done, progress.total))
        if progress.done == 2:
            token.cancel()

    calls = []
    with pytest.raises(Cancelled):
        predict_tiled(
            lambda t: calls.append(1) or t, volume, tile_shape=(16, 16, 8), overlap=4, report=report, cancel=token
        )
    assert len(calls) == 2
    assert seen == [(1, 9), (2, 9)]


def test_wrong_prediction_shape_is_an_error():
    with pytest.raises(ValueError, match="returned shape"):
        predict_tiled(lambda t: t[:-1], np.zeros((8, 8, 8)), tile_shape=8, overlap=0)


def test_memory_estimate_scales_and_chooses_tiles():
    cfg = DenoiserConfig.for_arch("unet", filters=4, depth=2)
    small, large = estimate_memory((32, 32, 16), cfg), estimate_memory((64, 64, 16), cfg)
    assert large == pytest.approx(4 * small, rel=1e-6)
    wide = DenoiserConfig.for_arch("simple", filters=8)
    assert estimate_memory((32, 32, 16), wide) > estimate_memory(
        (32, 32, 16), DenoiserConfig.for_arch("simple", filters=2)
    )
    tile = choose_tile_shape(
        (256, 256, 32), cfg, budget_bytes=small * 1.01, minimum=(16, 16, 16), overlap=(8, 8, 8), multiple=4
    )
    assert estimate_memory(tile, cfg) <= small * 1.01
    assert all(t % 4 == 0 and t >= 16 for t in tile)
    assert choose_tile_shape((64, 64, 16), cfg, budget_bytes=1e12, minimum=(8, 8, 8), overlap=(4, 4, 4)) == (64, 64, 16)


@pytest.mark.parametrize("budget_tiles", [0.3, 1.0, 2.5])
def test_chosen_tiles_compute_least_of_all_tilings_that_fit(budget_tiles):
    """Brute force over every tile on the pooling grid: none that fits the budget computes less (a long reach along z,
    as the first bundled model's, where halving the largest axis left most of each tile as overlap)."""
    cfg = DenoiserConfig.for_arch("unet", filters=4, depth=2)
    shape, overlap, multiple = (96, 80, 64), (16, 16, 40), 4
    minimum = tuple(o + multiple for o in overlap)
    budget = estimate_memory((48, 48, 48), cfg) * budget_tiles

    def cost(tile):
        tiles = plan_tiles(shape, tile, overlap, multiple=multiple)
        return len(tiles) * (math.prod(tile) + TILE_COST_VOXELS)

    sizes = [range(m, s + 1, multiple) for m, s in zip(minimum, shape, strict=True)]
    feasible = [t for t in itertools.product(*sizes) if estimate_memory(t, cfg) <= budget]
    chosen = choose_tile_shape(shape, cfg, budget, minimum=minimum, overlap=overlap, multiple=multiple)
    assert estimate_memory(chosen, cfg) <= budget
    assert cost(chosen) == min(cost(t) for t in feasible)


def test_halve_tile_respects_minimum_and_multiple():
    assert halve_tile((64, 32, 16), minimum=(8, 8, 8), multiple=4) == (32, 32, 16)
    assert halve_tile((30, 30, 16), minimum=(8, 8, 8), multiple=4) == (16, 30, 16)
    assert halve_tile((16, 16, 16), minimum=(16, 16, 16)) is None


def test_when_no_tile_fits_the_smallest_is_chosen():
    cfg = DenoiserConfig.for_arch("unet", filters=4, depth=2)
    chosen = choose_tile_shape(
        (96, 80, 16), cfg, budget_bytes=1, minimum=(20, 20, 44), overlap=(16, 16, 40), multiple=4
    )
    assert chosen == (20, 20, 16)  # the minimum, and the whole axis where the minimum exceeds it
