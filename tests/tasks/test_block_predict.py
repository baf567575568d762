"""The tiling of one block's region: a leaner tile budget where it costs little time, the whole-volume one where a
long reach would make the lean tiles compute many times over."""

from __future__ import annotations

import math

import pytest

from voxelstudio.tasks.block_predict import BLOCK_TILE_BYTES, LEAN_COST_RATIO, block_plan, limited_budget


@pytest.fixture(autouse=True)
def whole_volume_budget(monkeypatch):
    monkeypatch.setattr("voxelstudio.ml.inference.default_tile_budget", lambda: 1 << 30)


def _cost(plan) -> int:
    from voxelstudio.ml.tiling import tiling_cost

    return tiling_cost(plan.padded_shape, plan.tile_shape, plan.overlap, plan.multiple)


def unet(kernel, depth, filters=8):
    from voxelstudio.ml.config import DenoiserConfig

    return DenoiserConfig.for_arch("unet", filters=filters, kernel=kernel, depth=depth)


def memory(tile, cfg) -> int:
    from voxelstudio.ml.tiling import estimate_memory

    return estimate_memory(tile, cfg)


def test_a_short_reach_tiles_within_the_lean_budget():
    cfg = unet((3, 3, 3), depth=2)  # reach 11
    plan = block_plan(cfg, (280, 280, 88), None)  # a 256x256x64 chunk with its halo
    assert memory(plan.tile_shape, cfg) <= BLOCK_TILE_BYTES < memory((114, 156, 88), cfg)  # the whole-volume choice


def test_a_long_reach_keeps_the_whole_volume_budget_rather_than_compute_many_times_over():
    from voxelstudio.ml.inference import plan_prediction
    from voxelstudio.ml.tiling import tiling_cost

    def cost(p) -> int:
        return tiling_cost(p.padded_shape, p.tile_shape, p.overlap, p.multiple)

    cfg = unet((3, 3, 6), depth=3)  # the first bundled model's architecture: reach 75 along z
    plan = block_plan(cfg, (312, 312, 216), None)
    assert memory(plan.tile_shape, cfg) > BLOCK_TILE_BYTES
    assert cost(plan_prediction(cfg, (312, 312, 216), budget_bytes=BLOCK_TILE_BYTES)) > LEAN_COST_RATIO * cost(plan)


def test_a_given_tile_is_kept():
    assert block_plan(unet((3, 3, 3), depth=2), (280, 280, 88), (64, 64, 88)).tile_shape == (64, 64, 88)


def test_under_a_memory_limit_the_tiles_fit_what_the_model_and_buffers_leave(monkeypatch, caplog):
    from voxelstudio.tasks import block_predict

    monkeypatch.setattr(block_predict, "_WARNED_LIMITS", set())
    cfg = unet((3, 3, 3), depth=3, filters=12)  # the bundled model's architecture
    region = (312, 312, 120)
    unlimited = block_plan(cfg, region, None)
    used = {}
    for limit in (1_300_000_000, 1_100_000_000):
        plan = block_plan(cfg, region, None, limit, baseline=700_000_000)  # TensorFlow and a model
        buffers = block_predict.REGION_COPIES * 4 * 312 * 312 * 120
        held = 700_000_000 + block_predict.MEASURED_TILE_FRACTION * plan.tile_bytes + buffers
        assert held <= limit * (1 - block_predict.HEADROOM)
        used[limit] = memory(plan.tile_shape, cfg)
    assert used[1_100_000_000] < used[1_300_000_000] < memory(unlimited.tile_shape, cfg)
    assert not caplog.records
    tta = block_plan(cfg, region, None, 1_300_000_000, tta=True, baseline=700_000_000)  # four more region-sized arrays
    assert memory(tta.tile_shape, cfg) < used[1_300_000_000]
    # the pyramid written after the last block reads 2x2 chunks: large blocks leave less for the tiles
    chunked = block_plan(cfg, region, None, 1_300_000_000, baseline=700_000_000, block_voxels=512 * 512 * 64)
    assert memory(chunked.tile_shape, cfg) < used[1_300_000_000]


def test_a_limit_the_smallest_tiles_cannot_meet_is_said_once(monkeypatch, caplog):
    from voxelstudio.tasks import block_predict

    monkeypatch.setattr(block_predict, "_WARNED_LIMITS", set())
    cfg = unet((3, 3, 3), depth=3)
    for _ in range(2):
        plan = block_plan(cfg, (312, 312, 120), None, 750_000_000, baseline=700_000_000)
    assert plan.tile_bytes > 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "memory limit 750 MB" in warnings[0] and "700 MB in use" in warnings[0]


def test_a_generous_limit_changes_nothing_and_a_limit_never_takes_bigger_tiles():
    cfg = unet((3, 3, 3), depth=2)  # short reach: without a limit, the lean budget
    unlimited = block_plan(cfg, (280, 280, 88), None)
    assert block_plan(cfg, (280, 280, 88), None, 64 << 30, baseline=700_000_000) == unlimited
    for limit in (1_100_000_000, 1_300_000_000, 1_600_000_000):
        limited = block_plan(cfg, (280, 280, 88), None, limit, baseline=700_000_000)
        assert memory(limited.tile_shape, cfg) <= memory(unlimited.tile_shape, cfg)


def test_a_dask_worker_shares_its_memory_limit_up_to_the_pause_among_its_threads():
    from dask.distributed import Client, LocalCluster

    from voxelstudio.tasks.block_predict import worker_memory_limit

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, memory_limit="2GB", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        limit, threads = client.submit(worker_memory_limit, pure=False).result()
    assert limit == pytest.approx(2e9 * 0.8) and threads == 2  # dask pauses a worker at 80% of its limit
    assert worker_memory_limit() == (None, 1)  # here, outside a worker


def test_threads_share_what_the_process_leaves_after_its_baseline_once():
    """Dividing the limit among the threads first charged the process's baseline (TensorFlow, the model) to each:
    4 threads of a 4 GB worker got the smallest tiles, 33x slower for one block."""
    cfg = unet((3, 3, 3), depth=3, filters=12)  # the bundled model's architecture
    region, limit, baseline = (312, 312, 120), int(3.2e9), 700_000_000
    unlimited = block_plan(cfg, region, None)
    shared = block_plan(cfg, region, None, limit, baseline=baseline, threads=4)
    assert limited_budget(limit, baseline, math.prod(region), threads=4) > 0
    assert shared.tile_shape != (68, 68, 68) and _cost(shared) < 2 * _cost(unlimited)
    alone = limited_budget(limit, baseline, math.prod(region))
    assert limited_budget(limit, baseline, math.prod(region), threads=4) < alone
