"""Fresh simulated training patches, batch by batch: what a generator worker runs (numpy and scipy only).

:class:`PatchStream` describes the stream; :func:`simulate_batch` makes batch ``index`` from nothing but the stream
and the index, so a batch is the same whichever process or thread makes it and in whatever order. Every patch
draws all of its parameters with ``SimParams.random``; its optics come from a pool of ``microscopes`` drawn once
from the seed (rounded to :data:`voxelstudio.sim.psf_cache.OPTICS_GRID`), so each worker computes a microscope's
Gibson-Lanni PSF once and then reuses it from its :class:`~voxelstudio.sim.psf_cache.PsfCache`
(``microscopes=0``: fresh optics for every patch, rounded, and the cache rarely hits).

Each patch is cut from the middle of a volume ``margin`` voxels wider on each side, so it also receives the light
of beads beside it and shows beads cut by its sides, as a patch cut from a real scan does. Raw patches are
percentile-normalised over that volume (2 / 99.8, as training and prediction do); targets stay in [0, 1].
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.sim import pair
from voxelstudio.sim.pair import simulate_pair
from voxelstudio.sim.params import OpticsParams, SimParams, validate_shape
from voxelstudio.sim.psf_cache import PsfCache, round_optics

MICROSCOPE_STREAM = 1
BATCH_STREAM = 2
"""Second element of the ``[seed, stream, ...]`` random streams of the microscope pool and of the batches."""


@dataclass(frozen=True)
class PatchStream:
    """An endless, seeded stream of simulated (raw, target) patch batches.

    ``patch_shape`` (H, W, Z) is one patch; ``batch_size`` patches make a batch. ``microscopes`` is the size of
    the optics pool (0: fresh optics per patch). ``margin`` lateral voxels are simulated around each patch.
    ``params``: None draws every parameter per patch (``SimParams.random``); a SimParams uses those parameters for
    every patch (only the beads and noise change). ``cache_dir``: a folder the workers share computed PSFs through.
    ``optics_prior``: how the optics are drawn, "uniform" (``OpticsParams.random``) or "practical"
    (``OpticsParams.practical``: immersion and sample indices as objectives are used).
    """

    patch_shape: tuple[int, int, int] = (64, 64, 32)
    batch_size: int = 4
    seed: int = 0
    microscopes: int = 256
    margin: int = 16
    params: SimParams | None = None
    cache_dir: str | None = None
    normalizer: PercentileNormalizer = field(default_factory=PercentileNormalizer)
    optics_prior: str = "uniform"

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_shape", validate_shape(self.patch_shape, "patch_shape"))
        for name in ("batch_size", "seed", "microscopes", "margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.params is not None and not isinstance(self.params, SimParams):
            raise ValueError(f"params must be SimParams or None, got {type(self.params).__name__}")
        if self.optics_prior not in OPTICS_PRIORS:
            raise ValueError(f"optics_prior must be one of {', '.join(OPTICS_PRIORS)}, got {self.optics_prior!r}")

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        """Shape of the volume each patch is cut from."""
        height, width, depth = self.patch_shape
        return (height + 2 * self.margin, width + 2 * self.margin, depth)

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray, dict[str, int], np.ndarray]:
        """Batch ``index`` as (raw, target, look-up counts, voxel sizes): the picklable batch function a generator
        runs (in a worker process, with single-threaded FFTs)."""
        if multiprocessing.parent_process() is not None:
            pair.fft_workers = 1
        batch = simulate_batch(self, index)
        counts = {"cache_hits": batch.cache_hits, "cache_misses": batch.cache_misses}
        return batch.raw, batch.target, {**counts, "cache_disk_hits": batch.cache_disk_hits}, batch.spacing

    def microscope(self, number: int) -> OpticsParams:
        """Optics ``number`` of the pool (rounded to the cache's grid)."""
        return _pool_optics(self.seed, number, self.optics_prior)

    def patch_params(self, rng: np.random.Generator) -> SimParams:
        """The parameters of the next patch drawn from ``rng``."""
        if self.params is not None:  # rounded as the PSF cache simulates it, so the recorded voxel size is true
            return self.params.replace(optics=round_optics(self.params.optics))
        params = SimParams.random(rng)
        if self.microscopes:
            return params.replace(optics=self.microscope(int(rng.integers(self.microscopes))))
        optics = params.optics if self.optics_prior == "uniform" else OPTICS_PRIORS[self.optics_prior](rng)
        return params.replace(optics=round_optics(optics))


OPTICS_PRIORS = {"uniform": OpticsParams.random, "practical": OpticsParams.practical}
"""How :class:`PatchStream` may draw optics."""


@lru_cache(maxsize=4096)
def _pool_optics(seed: int, number: int, prior: str = "uniform") -> OpticsParams:
    return round_optics(OPTICS_PRIORS[prior](np.random.default_rng([seed, MICROSCOPE_STREAM, number])))


_local = threading.local()


def worker_cache(directory: str | None = None) -> PsfCache:
    """This thread's PSF cache backed by ``directory`` (one per thread: PsfCache is not thread-safe; a worker
    process usually has one thread)."""
    caches = getattr(_local, "caches", None)
    if caches is None or getattr(_local, "pid", None) != os.getpid():
        caches = _local.caches = {}
        _local.pid = os.getpid()
    if directory not in caches:
        caches[directory] = PsfCache(directory=directory)
    return caches[directory]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SimBatch:
    """One batch: ``raw`` and ``target`` (N, H, W, Z) float32, the PSF cache look-ups it made, and each patch's voxel
    size (N, 3) (y, x, z µm)."""

    raw: np.ndarray
    target: np.ndarray
    cache_hits: int
    cache_misses: int
    cache_disk_hits: int = 0
    spacing: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))


def simulate_batch(stream: PatchStream, index: int, cache: PsfCache | None = None) -> SimBatch:
    """Batch ``index`` of ``stream``: a function of (stream, index) only, whichever worker runs it."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"batch index must be a non-negative integer, got {index!r}")
    cache = worker_cache(stream.cache_dir) if cache is None else cache
    hits, misses, disk = cache.hits, cache.misses, cache.disk_hits
    rng = np.random.default_rng([stream.seed, BATCH_STREAM, int(index)])
    height, width, depth = stream.patch_shape
    m = stream.margin
    raws = np.empty((stream.batch_size, height, width, depth), dtype=np.float32)
    targets = np.empty_like(raws)
    spacings = np.empty((stream.batch_size, 3), dtype=np.float32)
    for n in range(stream.batch_size):
        params = stream.patch_params(rng)
        spacings[n] = params.optics.voxel_size_um
        pair_seed = int(rng.integers(2**63))
        raw, target = simulate_pair(stream.volume_shape, params, seed=pair_seed, psf_cache=cache)
        raws[n] = stream.normalizer.before(raw)[m : m + height, m : m + width, :]
        targets[n] = target[m : m + height, m : m + width, :]
    return SimBatch(raws, targets, cache.hits - hits, cache.misses - misses, cache.disk_hits - disk, spacings)
