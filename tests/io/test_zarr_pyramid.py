"""io.zarr_pyramid: OME-Zarr multiscale levels are 2x means in y and x (z while it is fine and deep enough), listed
with their scale and translation, and readable level by level."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.io.zarr_ import create_store, levels, open_lazy
from voxelstudio.io.zarr_pyramid import level_factors, write_pyramid


def test_level_factors_keep_thin_or_coarse_z_and_stop_at_the_minimum_size():
    assert level_factors((512, 2048, 2048), (0.3, 0.1, 0.1)) == [(1, 2, 2), (1, 2, 2), (2, 2, 2)]
    assert level_factors((40, 1024, 1024), (0.1, 0.1, 0.1)) == [(1, 2, 2)] * 2  # 40 planes: too thin to halve
    assert level_factors((64, 4096, 4096), (0.1, 0.1, 0.1), max_levels=3) == [(2, 2, 2), (1, 2, 2)]
    assert level_factors((10, 256, 200), (1.0, 1.0, 1.0)) == []


def test_pyramid_levels_are_means_with_ngff_scale_and_translation(tmp_path):
    data = np.random.default_rng(0).random((9, 17, 4)).astype(np.float32)  # (H, W, Z), odd lateral sizes
    array = create_store(tmp_path / "p.ome.zarr", data.shape, (0.1, 0.1, 0.5), "p", (4, 8, 8))
    array[...] = data.transpose(2, 0, 1)
    assert write_pyramid(tmp_path / "p.ome.zarr", min_lateral=5) == 3
    found = levels(tmp_path / "p.ome.zarr")
    assert [(level.path, level.shape) for level in found] == [("0", (9, 17, 4)), ("1", (5, 9, 4)), ("2", (3, 5, 4))]
    assert found[2].spacing == pytest.approx((0.4, 0.4, 0.5))
    padded = np.pad(data, ((0, 1), (0, 1), (0, 0)), mode="edge")
    expected = padded.reshape(5, 2, 9, 2, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(open_lazy(tmp_path / "p.ome.zarr", "1").data.compute(), expected, rtol=1e-6)
    datasets = zarr.open_group(str(tmp_path / "p.ome.zarr"), mode="r").attrs["multiscales"][0]["datasets"]
    scale, translation = datasets[2]["coordinateTransformations"]
    assert scale["scale"] == pytest.approx([0.5, 0.4, 0.4]) and translation["type"] == "translation"
    assert translation["translation"] == pytest.approx([0.0, 0.15, 0.15])  # centre of the first 4x4 voxels
    assert zarr.open_array(str(tmp_path / "p.ome.zarr" / "1"), mode="r").chunks == (4, 5, 8)
    assert load_volume(tmp_path / "p.ome.zarr", "2").spacing == pytest.approx((0.4, 0.4, 0.5))


def test_an_image_placed_in_space_keeps_its_origin_at_every_level(tmp_path):
    """A tile of a larger acquisition: its translation is read as its origin and written on again."""
    data = np.zeros((9, 17, 4), np.float32)
    origin = (2000.0, 3000.0, 100.0)  # (y, x, z) µm
    create_store(tmp_path / "p.ome.zarr", data.shape, (0.1, 0.1, 0.5), "p", (4, 8, 8), origin)[...] = 0
    write_pyramid(tmp_path / "p.ome.zarr", min_lateral=5)
    datasets = zarr.open_group(str(tmp_path / "p.ome.zarr"), mode="r").attrs["multiscales"][0]["datasets"]
    assert datasets[0]["coordinateTransformations"][1]["translation"] == [100.0, 2000.0, 3000.0]
    assert datasets[2]["coordinateTransformations"][1]["translation"] == pytest.approx([100.0, 2000.15, 3000.15])
    assert open_lazy(tmp_path / "p.ome.zarr").origin == origin
    assert open_lazy(tmp_path / "p.ome.zarr", "2").origin == pytest.approx((2000.15, 3000.15, 100.0))


def test_levels_built_piece_by_piece_equal_the_whole_arrays_mean_for_any_chunking(tmp_path):
    data = np.random.default_rng(1).random((23, 19, 70)).astype(np.float32)  # (H, W, Z): z deep and fine enough
    array = create_store(tmp_path / "p.ome.zarr", data.shape, (0.5, 0.5, 0.1), "p", (7, 3, 5))  # odd (z, y, x)
    array[...] = data.transpose(2, 0, 1)
    assert write_pyramid(tmp_path / "p.ome.zarr", min_lateral=6, threads=2) == 3
    expected = data
    for path in ("1", "2"):
        factor = (2, 2, 2) if expected.shape[2] >= 64 else (2, 2, 1)
        pads = [(0, (-n) % f) for n, f in zip(expected.shape, factor, strict=True)]
        padded = np.pad(expected, pads, mode="edge")
        h, w, z = (n // f for n, f in zip(padded.shape, factor, strict=True))
        expected = padded.reshape(h, factor[0], w, factor[1], z, factor[2]).mean(axis=(1, 3, 5))
        np.testing.assert_allclose(open_lazy(tmp_path / "p.ome.zarr", path).data.compute(), expected, rtol=1e-5)
    assert [level.shape for level in levels(tmp_path / "p.ome.zarr")] == [(23, 19, 70), (12, 10, 35), (6, 5, 35)]


def test_saving_a_wide_volume_writes_a_pyramid_and_a_small_one_none(tmp_path):
    wide = Volume(np.ones((300, 260, 3), np.float32), spacing=(0.2, 0.2, 1.0))
    save_volume(wide, tmp_path / "wide.ome.zarr")
    assert [level.shape for level in levels(tmp_path / "wide.ome.zarr")] == [(300, 260, 3), (150, 130, 3)]
    save_volume(Volume(np.ones((20, 18, 6), np.float32)), tmp_path / "small.ome.zarr")
    assert len(levels(tmp_path / "small.ome.zarr")) == 1
    assert load_volume(tmp_path / "wide.ome.zarr").shape == (300, 260, 3)  # level 0 unless a level is named


@pytest.mark.parametrize("damage", ["group", "dimensions", "missing"])
def test_a_damaged_lower_level_leaves_the_others_readable(tmp_path, damage):
    import shutil

    from voxelstudio.core.errors import VolumeReadError
    from voxelstudio.io import summarize_file

    store = tmp_path / "p.ome.zarr"
    data = np.random.default_rng(2).random((9, 17, 4)).astype(np.float32)
    create_store(store, data.shape, (0.1, 0.1, 0.5), "p", (4, 8, 8))[...] = data.transpose(2, 0, 1)
    assert write_pyramid(store, min_lateral=5) == 3
    shutil.rmtree(store / "1")
    if damage == "group":
        zarr.open_group(str(store), mode="r+").create_group("1")
    elif damage == "dimensions":
        zarr.open_group(str(store), mode="r+").create_array("1", shape=(5, 9), dtype="float32")
    assert [level.path for level in levels(store)] == ["0", "2"]
    np.testing.assert_array_equal(load_volume(store).data, data)
    assert [v.name for v in summarize_file(store).variables] == ["0", "2"]  # what `voxelstudio info` lists
    problem = "has 2 dimensions" if damage == "dimensions" else "is listed but has no array"
    with pytest.raises(VolumeReadError, match=rf"p\.ome\.zarr: OME-Zarr level '1' {problem}"):
        load_volume(store, "1")
