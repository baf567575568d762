"""SimulatedPatches over a PatchStream: fresh simulated batches, the same for any worker count; dead workers raise."""

from __future__ import annotations

import functools
import os
import signal
import time

import numpy as np
import pytest
from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

from voxelstudio.ml.sim_dataset import GeneratorWorkerError, SimulatedPatches
from voxelstudio.sim import SimParams
from voxelstudio.sim.psf_cache import PsfCache, round_optics
from voxelstudio.sim.stream import BATCH_STREAM, PatchStream, simulate_batch

STREAM = PatchStream(patch_shape=(32, 32, 16), batch_size=2, seed=5, microscopes=2, margin=4)


def batches(dataset: SimulatedPatches, indices: range) -> list[tuple[np.ndarray, np.ndarray]]:
    with dataset:
        return [dataset[i] for i in indices]


def test_batches_are_the_same_with_0_1_and_2_workers_and_through_keras() -> None:
    inline = batches(SimulatedPatches(STREAM), range(3))
    x, y = inline[0]
    assert x.shape == y.shape == (2, 32, 32, 16, 1) and x.dtype == y.dtype == np.float32
    assert y.min() >= 0.0 and y.max() <= 1.0 and y.max() > 0.1
    assert not np.array_equal(inline[0][0], inline[1][0])  # every batch is new
    for workers in (1, 2):
        made = batches(SimulatedPatches(STREAM, workers=workers, use_multiprocessing=True), range(3))
        for (xa, ya), (xb, yb) in zip(inline, made, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    with SimulatedPatches(STREAM, batches=3, workers=2, use_multiprocessing=True) as dataset:
        adapter = PyDatasetAdapter(dataset)
        through_keras = list(adapter.get_numpy_iterator())
        assert dataset.counts["cache_misses"] >= 1 and dataset.samples_made == 6
    assert len(through_keras) == 3
    for (xa, _), (xb, _) in zip(inline, through_keras, strict=True):
        np.testing.assert_array_equal(xa, xb)
    threads = batches(SimulatedPatches(STREAM, workers=2), range(2))
    np.testing.assert_array_equal(threads[1][0], inline[1][0])


def test_seed_changes_the_batches_and_epochs_continue_the_stream() -> None:
    other = SimulatedPatches(PatchStream(**{**STREAM.__dict__, "seed": 6}))
    assert not np.array_equal(other[0][1], SimulatedPatches(STREAM)[0][1])
    finite = SimulatedPatches(STREAM, batches=2)
    assert finite.num_batches == 2 and SimulatedPatches(STREAM).num_batches is None
    finite.on_epoch_end()
    np.testing.assert_array_equal(finite[0][0], SimulatedPatches(STREAM)[2][0])


def test_every_patch_draws_its_parameters_and_optics_come_from_the_pool() -> None:
    stream = PatchStream(patch_shape=(16, 16, 8), microscopes=3, seed=1)
    rng = np.random.default_rng(0)
    drawn = [stream.patch_params(rng) for _ in range(30)]
    assert len({p.photons for p in drawn}) == 30 and len({p.haze for p in drawn}) == 30
    assert len({p.out_of_stack for p in drawn}) == 30
    assert {p.optics for p in drawn} == {stream.microscope(k) for k in range(3)}
    fresh = PatchStream(patch_shape=(16, 16, 8), microscopes=0).patch_params(rng)
    assert fresh.optics == round_optics(fresh.optics)
    fixed = PatchStream(patch_shape=(16, 16, 8), params=SimParams(photons=77.0)).patch_params(rng)
    assert fixed.photons == 77.0


def test_each_patch_carries_the_voxel_size_of_the_microscope_it_was_simulated_with() -> None:
    stream = PatchStream(patch_shape=(16, 16, 8), batch_size=3, microscopes=0, seed=2, margin=2)
    raw, _, _, spacing = stream(0)
    rng = np.random.default_rng([stream.seed, BATCH_STREAM, 0])  # as simulate_batch draws batch 0
    expected = []
    for _ in range(3):
        expected.append(stream.patch_params(rng).optics.voxel_size_um)
        rng.integers(2**63)  # the pair's seed
    assert raw.shape[0] == 3 and spacing.shape == (3, 3)
    np.testing.assert_allclose(spacing, expected, rtol=1e-6)
    assert len({tuple(s) for s in spacing}) == 3  # every patch its own microscope


def test_fixed_parameters_report_the_voxel_size_the_psf_cache_simulated() -> None:
    """The cache simulates rounded optics; a stream of fixed parameters must report those, not the unrounded ones
    (a spacing-conditioned model would learn a voxel size 1-2 % off)."""
    from voxelstudio.sim import OpticsParams

    odd = SimParams(optics=OpticsParams(pixel_um=0.1083, z_step_um=0.1234))
    stream = PatchStream(patch_shape=(16, 16, 8), batch_size=2, microscopes=0, seed=2, margin=2, params=odd)
    _, _, _, spacing = stream(0)
    np.testing.assert_allclose(spacing, [round_optics(odd.optics).voxel_size_um] * 2, rtol=1e-6)
    assert not np.allclose(spacing[0], odd.optics.voxel_size_um, rtol=1e-3)  # rounding moved it: the check bites


def test_a_repeated_microscope_hits_the_psf_cache() -> None:
    cache = PsfCache()
    one = PatchStream(patch_shape=(32, 32, 16), batch_size=3, microscopes=1, margin=4)
    first = simulate_batch(one, 0, cache)
    assert first.cache_misses == 1 and first.cache_hits >= 4  # one Gibson-Lanni PSF for three patches
    second = simulate_batch(one, 1, cache)
    assert second.cache_misses == 0 and second.cache_hits >= 6
    many = PatchStream(patch_shape=(32, 32, 16), batch_size=3, microscopes=0, margin=4)
    assert simulate_batch(many, 0, cache).cache_misses == 3  # different optics miss


def test_a_dead_worker_raises_instead_of_hanging() -> None:
    with SimulatedPatches(STREAM, workers=1, use_multiprocessing=True) as dataset:
        dataset[0]
        (pid,) = dataset.worker_pids()
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(GeneratorWorkerError, match="worker process died"):
            dataset[1]
            dataset[2]  # in case the first request was accepted before the death was noticed
        assert time.monotonic() - started < 30


def test_a_dead_worker_stops_the_keras_iterator_with_its_error() -> None:
    with SimulatedPatches(STREAM, batches=50, workers=1, use_multiprocessing=True, max_queue_size=2) as dataset:
        iterator = PyDatasetAdapter(dataset).get_numpy_iterator()
        next(iterator)
        os.kill(dataset.worker_pids()[0], signal.SIGKILL)
        with pytest.raises(GeneratorWorkerError):
            for _ in range(50):
                next(iterator)


def test_an_error_in_the_batch_function_reaches_the_caller() -> None:
    broken = functools.partial(simulate_batch, STREAM, cache="not a cache")
    with (
        SimulatedPatches(broken, workers=1, use_multiprocessing=True) as dataset,
        pytest.raises(AttributeError, match="hits"),
    ):
        dataset[0]
    with pytest.raises(ValueError, match="workers"):
        SimulatedPatches(STREAM, workers=-1)


def test_fit_sees_new_batches_every_epoch_finite_and_endless() -> None:
    import keras

    keys: list[int] = []

    def make_batch(key: int) -> tuple[np.ndarray, np.ndarray]:
        keys.append(key)
        return np.full((2, 4, 4, 4), key, np.float32), np.zeros((2, 4, 4, 4), np.float32)

    model = keras.Sequential([keras.Input((4, 4, 4, 1)), keras.layers.Conv3D(1, 1)])
    model.compile(optimizer="sgd", loss="mse")
    # (Keras's TF backend first peeks a batch or two for the output signature)
    model.fit(SimulatedPatches(make_batch, batches=3), epochs=2, verbose=0)
    assert len(set(keys)) >= 6  # two epochs of three batches, none repeated
    keys.clear()
    model.fit(SimulatedPatches(make_batch), epochs=2, steps_per_epoch=2, shuffle=False, verbose=0)
    assert {0, 1, 2, 3} <= set(keys)  # the second epoch continues the stream


def test_the_practical_prior_draws_the_pool_and_fresh_optics_as_objectives_are_used() -> None:
    from voxelstudio.sim.params import IMMERSIONS

    def objective(ni: float) -> float | None:
        """The immersion of IMMERSIONS that ``ni`` is, as the PSF cache's grid rounds it (None: none)."""
        return next((known for known, *_ in IMMERSIONS if abs(known - ni) <= 0.0025), None)

    pooled = PatchStream(patch_shape=(16, 16, 8), microscopes=40, seed=1, optics_prior="practical")
    kinds = [objective(pooled.microscope(i).ni) for i in range(40)]
    assert None not in kinds and len(set(kinds)) > 1
    fresh = PatchStream(patch_shape=(16, 16, 8), microscopes=0, optics_prior="practical")
    assert objective(fresh.patch_params(np.random.default_rng(0)).optics.ni) is not None
    uniform = PatchStream(patch_shape=(16, 16, 8), microscopes=40, seed=1)
    assert None in [objective(uniform.microscope(i).ni) for i in range(40)]  # the default draws are unchanged
    with pytest.raises(ValueError, match="optics_prior must be one of uniform, practical"):
        PatchStream(optics_prior="lab")
