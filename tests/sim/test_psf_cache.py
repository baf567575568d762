"""PsfCache and round_optics: repeated optics hit, different optics miss, results independent of the cache."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.sim import OpticsParams, SimParams, simulate_pair
from voxelstudio.sim.psf import make_psf
from voxelstudio.sim.psf_cache import OPTICS_GRID, PsfCache, round_optics

SHAPE = (17, 17, 15)


def test_round_optics_snaps_to_the_grid_and_stays_valid() -> None:
    optics = OpticsParams(na=1.4349, ni=1.4361, ns=1.33, depth_um=3.04, z_step_um=0.1234, wavelength_um=0.5234)
    rounded = round_optics(optics)
    assert rounded.depth_um == 3.0 and rounded.z_step_um == 0.125 and rounded.wavelength_um == 0.525
    assert rounded.na < rounded.ni  # na 1.43 after rounding ni to 1.435 / na to 1.43
    for name, step in OPTICS_GRID.items():
        value = getattr(rounded, name)
        assert abs(value / step - round(value / step)) < 1e-6, name
    assert round_optics(rounded) == rounded
    for seed in range(50):
        drawn = round_optics(OpticsParams.random(np.random.default_rng(seed)))
        assert drawn.na < drawn.ni


def test_repeated_optics_hit_and_different_optics_miss() -> None:
    cache = PsfCache()
    optics = OpticsParams(na=1.3, depth_um=4.0)
    first = cache.psf(optics, SHAPE)
    assert (cache.hits, cache.misses) == (0, 1)
    assert cache.psf(optics, SHAPE) is first
    assert cache.psf(OpticsParams(na=1.3012, depth_um=4.02), SHAPE) is first  # the same grid cell
    assert (cache.hits, cache.misses) == (2, 1)
    cache.psf(OpticsParams(na=1.2, depth_um=4.0), SHAPE)  # other optics
    cache.psf(optics, (17, 17, 13))  # other PSF shape
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 3, 3)
    assert stats.hit_rate == pytest.approx(2 / 5)
    np.testing.assert_array_equal(first, make_psf(round_optics(optics), SHAPE))


def test_least_recently_used_psfs_are_dropped_beyond_the_budget() -> None:
    one = make_psf(OpticsParams(), SHAPE).nbytes
    cache = PsfCache(max_bytes=2 * one)
    a, b, c = (OpticsParams(na=na) for na in (1.1, 1.2, 1.3))
    cache.psf(a, SHAPE)
    cache.psf(b, SHAPE)
    cache.psf(a, SHAPE)  # a is now the most recent
    cache.psf(c, SHAPE)  # drops b
    assert cache.stats().entries == 2 and cache.stats().bytes <= 2 * one
    cache.psf(a, SHAPE)
    assert cache.misses == 3
    cache.psf(b, SHAPE)
    assert cache.misses == 4


def test_a_pair_through_the_cache_is_the_pair_of_the_rounded_optics() -> None:
    params = SimParams(optics=OpticsParams(na=1.2345, depth_um=5.03, z_step_um=0.1234), photons=500.0)
    cache = PsfCache()
    cached = simulate_pair((32, 32, 16), params, seed=3, psf_cache=cache)
    again = simulate_pair((32, 32, 16), params, seed=3, psf_cache=cache)
    plain = simulate_pair((32, 32, 16), params.replace(optics=round_optics(params.optics)), seed=3)
    for a, b, c in zip(cached, again, plain, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-3)
    assert cache.misses == 1 and cache.hits >= 2


def test_a_cache_folder_shares_psfs_between_caches(tmp_path) -> None:
    optics = OpticsParams(na=1.25)
    first = PsfCache(directory=str(tmp_path))
    computed = first.psf(optics, SHAPE)
    second = PsfCache(directory=str(tmp_path))  # e.g. another worker process
    read = second.psf(optics, SHAPE)
    assert (second.misses, second.disk_hits, second.hits) == (0, 1, 0)
    np.testing.assert_array_equal(read, computed)
    assert second.stats().hit_rate == 1.0
    (file,) = tmp_path.glob("psf-*.npy")
    file.write_bytes(b"broken")  # half-written or corrupt: computed again
    third = PsfCache(directory=str(tmp_path))
    np.testing.assert_array_equal(third.psf(optics, SHAPE), computed)
    assert third.misses == 1
