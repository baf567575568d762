"""The tiling of one block's region: a leaner tile budget where it costs little time, the whole-volume one where a
long reach would make the lean tiles compute many times over."""

from __future__ import annotations

import pytest

from voxelstudio.tasks.block_predict import BLOCK_TILE_BYTES, LEAN_COST_RATIO, block_plan


@pytest.fixture(autouse=True)
def whole_volume_budget(monkeypatch):
    monkeypatch.setattr("voxelstudio.ml.inference.default_tile_budget", lambda: 1 << 30)


def unet(kernel, depth):
    from voxelstudio.ml.config import DenoiserConfig

    return DenoiserConfig.for_arch("unet", filters=8, kernel=kernel, depth=depth)


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
