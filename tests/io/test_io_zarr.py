"""(OME-)Zarr and OME-TIFF: round-trips keep data and spacing, reading is lazy, bad stores are one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

from voxelstudio.core.errors import VolumeReadError, VolumeWriteError
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, read_variable, save_volume, summarize_file
from voxelstudio.io.zarr_ import compute, multiscales_attrs, open_lazy
from voxelstudio.io.zarr_ import levels as zarr_levels

SPACING = (0.1, 0.2, 0.5)


def volume(shape=(20, 18, 6), seed=0) -> Volume:
    data = np.random.default_rng(seed).random(shape).astype(np.float32)
    return Volume(data, spacing=SPACING, name="scan")


def test_npz_to_ome_zarr_to_mat_keeps_data_and_spacing(tmp_path):
    original = volume()
    save_volume(original, tmp_path / "a.npz")
    save_volume(load_volume(tmp_path / "a.npz"), tmp_path / "a.ome.zarr")
    store = load_volume(tmp_path / "a.ome.zarr")
    assert store.metadata["format"] == "ome-zarr" and store.name == "a"
    save_volume(store, tmp_path / "a.mat")
    back = load_volume(tmp_path / "a.mat")
    np.testing.assert_array_equal(back.data, original.data)
    assert back.spacing == pytest.approx(SPACING)
    attrs = dict(zarr.open_group(str(tmp_path / "a.ome.zarr"), mode="r").attrs)
    assert attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.5, 0.1, 0.2]
    assert zarr.open_array(str(tmp_path / "a.ome.zarr" / "0"), mode="r").shape == (6, 20, 18)  # stored z, y, x


def test_npy_to_ome_zarr_keeps_data(tmp_path):
    data = np.random.default_rng(1).random((9, 7, 5)).astype(np.float32)
    np.save(tmp_path / "b.npy", data)
    save_volume(load_volume(tmp_path / "b.npy"), tmp_path / "b.ome.zarr")
    np.testing.assert_array_equal(load_volume(tmp_path / "b.ome.zarr").data, data)


def test_written_stores_keep_chunks_in_nested_folders_as_ngff_specifies(tmp_path):
    """OME-NGFF 0.4 stores its Zarr v2 chunks as ``0/1/2`` (readers that fetch keys over HTTP rely on it)."""
    import json

    save_volume(Volume(np.ones((300, 20, 4), np.float32)), tmp_path / "v.ome.zarr")
    for level in ("0", "1"):
        assert json.loads((tmp_path / "v.ome.zarr" / level / ".zarray").read_text())["dimension_separator"] == "/"
    assert (tmp_path / "v.ome.zarr" / "0" / "0" / "0" / "0").is_file()


def test_ome_tiff_round_trip_keeps_physical_sizes(tmp_path):
    save_volume(volume(), tmp_path / "c.ome.tif")
    back = load_volume(tmp_path / "c.ome.tif")
    assert back.metadata["format"] == "ome-tiff" and back.name == "c"
    np.testing.assert_array_equal(back.data, volume().data)
    assert back.spacing == pytest.approx(SPACING)


def test_v3_store_with_ngff_05_metadata_and_units(tmp_path):
    root = zarr.open_group(str(tmp_path / "v3.ome.zarr"), mode="w", zarr_format=3)
    ms = multiscales_attrs("v3", (400.0, 400.0, 1000.0))["multiscales"]
    for axis in ms[0]["axes"]:
        axis["unit"] = "nanometer"
    root.attrs["ome"] = {"version": "0.5", "multiscales": ms}
    data = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)  # z, y, x
    root.create_array("0", shape=data.shape, dtype="uint16", chunks=(2, 5, 6))[...] = data
    loaded = load_volume(tmp_path / "v3.ome.zarr")
    np.testing.assert_array_equal(loaded.data, data.transpose(1, 2, 0))
    assert loaded.spacing == pytest.approx((0.4, 0.4, 1.0))


class CountingStore(zarr.storage.LocalStore):
    """A local store that records every key read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads: list[str] = []

    async def get(self, key, *args, **kwargs):
        self.reads.append(key)
        return await super().get(key, *args, **kwargs)


def chunk_reads(store: CountingStore) -> list[str]:
    return [k for k in store.reads if k.startswith("0/") and not k.rsplit("/", 1)[-1].startswith(".")]


def test_reading_metadata_and_one_block_reads_one_chunk(tmp_path):
    root = zarr.open_group(str(tmp_path / "small.zarr"), mode="w", zarr_format=2)
    root.attrs.update(multiscales_attrs("small", SPACING))
    root.create_array("0", shape=(16, 64, 64), chunks=(8, 16, 16), dtype="float32")[...] = 1.0  # 32 chunks
    store = CountingStore(str(tmp_path / "small.zarr"), read_only=True)
    lazy = open_lazy(tmp_path / "small.zarr", store=store)
    assert lazy.shape == (64, 64, 16) and lazy.spacing == SPACING
    assert chunk_reads(store) == []  # metadata only
    block = compute(tmp_path / "small.zarr", lazy.data[:16, :16, :8])
    assert block.shape == (16, 16, 8) and np.all(block == 1.0)
    assert chunk_reads(store) == ["0/0.0.0"]  # one chunk of 32, nothing else


def test_store_with_no_array_is_a_clear_error(tmp_path):
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    with pytest.raises(VolumeReadError, match="contains no array"):
        load_volume(tmp_path / "empty.zarr")


def test_time_and_channel_axes_must_be_picked(tmp_path):
    root = zarr.open_group(str(tmp_path / "tc.ome.zarr"), mode="w", zarr_format=2)
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": [1.0, 1.0, 0.5, 0.1, 0.2]}]
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]
    data = np.random.default_rng(2).random((3, 1, 4, 5, 6)).astype(np.float32)
    root.create_array("0", shape=data.shape, dtype="float32")[...] = data
    with pytest.raises(VolumeReadError, match=r"3 time points \(axis t.*pick one with the variable '0\[t=0\]'"):
        load_volume(tmp_path / "tc.ome.zarr")
    picked = load_volume(tmp_path / "tc.ome.zarr", "0[t=2]")
    np.testing.assert_array_equal(picked.data, data[2, 0].transpose(1, 2, 0))
    assert picked.spacing == pytest.approx(SPACING)
    assert "time points" in summarize_file(tmp_path / "tc.ome.zarr").choice_problem
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(4, 5, 6), dtype="float32", zarr_format=2)[...] = 1
    with pytest.raises(VolumeReadError, match=r"has no axis c, t to pick from \(axes z,y,x\)"):
        load_volume(tmp_path / "plain.zarr", "[t=99,c=42]")


def test_chunk_of_another_dtype_is_a_clear_error(tmp_path):
    for name, dtype in (("good.zarr", "float32"), ("other.zarr", "float64")):
        zarr.create_array(str(tmp_path / name), shape=(4, 8, 8), chunks=(4, 8, 8), dtype=dtype, zarr_format=2)[...] = 1
    shutil.copy(tmp_path / "other.zarr" / "0.0.0", tmp_path / "good.zarr" / "0.0.0")
    with pytest.raises(VolumeReadError, match="chunk cannot be read as the array's dtype"):
        load_volume(tmp_path / "good.zarr")


def test_a_file_named_zarr_and_a_missing_store_are_clear_errors(tmp_path):
    (tmp_path / "file.zarr").write_text("no")
    with pytest.raises(VolumeReadError, match="is a folder, not a file"):
        load_volume(tmp_path / "file.zarr")
    with pytest.raises(VolumeReadError, match="not found"):
        load_volume(tmp_path / "absent.zarr")


def test_store_writes_are_atomic(tmp_path):
    save_volume(volume(), tmp_path / "d.ome.zarr")
    with pytest.raises(VolumeWriteError, match="already exists"):
        save_volume(volume(seed=3), tmp_path / "d.ome.zarr")
    bad = Volume(np.full((4, 4, 4), np.nan, dtype=np.float32))
    with pytest.raises(VolumeWriteError):
        save_volume(bad, tmp_path / "e.ome.zarr")
    save_volume(volume(seed=3), tmp_path / "d.ome.zarr", overwrite=True)
    np.testing.assert_array_equal(load_volume(tmp_path / "d.ome.zarr").data, volume(seed=3).data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.ome.zarr"]


LAZY_RSS_CHILD = """
import resource, sys
import numpy as np
from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.io.zarr_ import compute, open_lazy
from voxelstudio.tasks.block_sample import sample_range
path = sys.argv[1]
lazy = open_lazy(path)  # warm up the imports and the metadata path first
compute(path, lazy.data[:8, :8, :1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
lazy = open_lazy(path)
value_range = sample_range(PercentileNormalizer(), lazy, path)
block = compute(path, lazy.data[:256, :256, :4])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, lazy.shape, block.shape)
"""


def test_a_store_larger_than_the_memory_limit_is_sampled_and_read_in_bounded_memory(tmp_path):
    """128 MB of float32 against a 48 MB limit: the normalisation sample and one block stay under the limit."""
    import subprocess
    import sys

    from voxelstudio.tasks import block_sample

    limit = 48e6
    root = zarr.open_group(str(tmp_path / "big.ome.zarr"), mode="w", zarr_format=2)
    root.attrs.update(multiscales_attrs("big", SPACING))
    array = root.create_array("0", shape=(8, 2048, 2048), chunks=(4, 256, 256), dtype="float32")
    rng = np.random.default_rng(0)
    for z in range(8):
        array[z] = rng.random((2048, 2048), dtype=np.float32)
    assert 2 * limit < 8 * 2048 * 2048 * 4 and limit / 2 > block_sample.SAMPLE_VOXELS * 4
    code = [sys.executable, "-c", LAZY_RSS_CHILD, str(tmp_path / "big.ome.zarr")]
    done = subprocess.run(code, capture_output=True, text=True, timeout=120, check=True)
    grown = int(done.stdout.split()[0])
    assert grown < limit, f"reading grew the peak RSS by {grown / 1e6:.0f} MB"


def _store_with_units(path, units, time_unit=None):
    ms = multiscales_attrs("u", (4.0, 4.0, 8.0))["multiscales"]
    for axis, unit in zip(ms[0]["axes"], units, strict=True):
        axis["unit"] = unit
    data = np.zeros((3, 4, 5), dtype=np.float32)  # z, y, x
    if time_unit is not None:
        ms[0]["axes"].insert(0, {"name": "t", "type": "time", "unit": time_unit})
        for dataset in ms[0]["datasets"]:
            dataset["coordinateTransformations"][0]["scale"].insert(0, 1.0)
        data = data[None]
    root = zarr.open_group(str(path), mode="w")
    root.attrs["multiscales"] = ms
    root.create_array("0", shape=data.shape, dtype="float32")[...] = data
    return path


def test_scale_units_convert_to_micrometres_and_a_time_axis_unit_is_no_length(tmp_path):
    store = _store_with_units(tmp_path / "a.ome.zarr", ["angstrom", "angstrom", "angstrom"], time_unit="second")
    assert load_volume(store, "0[t=0]").spacing == pytest.approx((4e-4, 4e-4, 8e-4))


def test_an_unknown_unit_leaves_the_voxel_size_unknown_with_a_warning(tmp_path):
    store = _store_with_units(tmp_path / "f.ome.zarr", ["furlong", "micrometer", "micrometer"])
    with pytest.warns(UserWarning, match=r"f\.ome\.zarr: unknown length unit 'furlong' for axis z; the voxel size"):
        loaded = load_volume(store)
    assert loaded.known_spacing is None


def test_a_scale_of_the_wrong_length_is_said_not_silently_dropped(tmp_path):
    root = zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="w", zarr_format=2)
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": [0.5, 0.1]}]  # two values for three axes
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0",
                                  "coordinateTransformations": scale}]}]  # fmt: skip
    root.create_array("0", shape=(4, 6, 5), dtype="float32")[...] = 1.0
    with pytest.warns(UserWarning, match=r"s\.ome\.zarr: an OME-Zarr scale lists 2 values for the 3 axes z,y,x"):
        loaded = load_volume(tmp_path / "s.ome.zarr")
    assert loaded.known_spacing is None


def _bioformats2raw_store(path, series=1):
    """What bioformats2raw (NGFF-Converter) writes: a root group holding an OME group and one image group per
    series, each with a two-level t,c,z,y,x pyramid."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    root.create_group("OME").attrs["series"] = [str(s) for s in range(series)]
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    stacks = []
    for s in range(series):
        image = root.create_group(str(s))
        datasets = [
            {"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 0.5, f, f]}]}
            for level, f in enumerate((0.1, 0.2))
        ]
        image.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
        stack = np.random.default_rng(s).random((1, 1, 6, 16, 12)).astype(np.float32)
        image.create_array("0", shape=stack.shape, dtype="float32")[...] = stack
        image.create_array("1", shape=(1, 1, 6, 8, 6), dtype="float32")[...] = stack[..., ::2, ::2]
        stacks.append(stack[0, 0].transpose(1, 2, 0))
    return stacks


def test_the_bioformats2raw_layout_reads_its_image_and_names_its_levels(tmp_path):
    path = tmp_path / "converted.ome.zarr"
    (stack,) = _bioformats2raw_store(path)

    volume = load_volume(path)

    np.testing.assert_array_equal(volume.data, stack)
    assert volume.spacing == pytest.approx((0.1, 0.1, 0.5))
    summary = summarize_file(path)
    assert summary.format == "ome-zarr" and summary.chosen == "0/0"
    assert [v.name for v in summary.variables] == ["0/0", "0/1"]
    assert load_volume(path, "0/1").spacing == pytest.approx((0.2, 0.2, 0.5))
    np.testing.assert_array_equal(load_volume(path, "0").data, stack)  # the image group: its finest level
    assert [level.path for level in zarr_levels(path)] == ["0/0", "0/1"]  # what the window opens a level by
    with pytest.raises(VolumeReadError, match=r"no multiscale level named '0/7'; available: 0/0, 0/1"):
        load_volume(path, "0/7")


def test_a_store_of_several_images_asks_which(tmp_path):
    path = tmp_path / "plate.ome.zarr"
    stacks = _bioformats2raw_store(path, series=3)
    with pytest.raises(VolumeReadError, match=r"the store holds 3 images \(0, 1, 2\); name one"):
        load_volume(path)
    np.testing.assert_array_equal(load_volume(path, "2").data, stacks[2])
    np.testing.assert_array_equal(load_volume(path, "1/1").data, stacks[1][::2, ::2])
    with pytest.raises(VolumeReadError, match=r"no image or level named '5'; the store holds the images 0, 1, 2"):
        load_volume(path, "5")


def test_a_store_whose_chunks_are_unwritten_is_not_called_corrupt(tmp_path):
    path = tmp_path / "sparse.zarr"  # 84 MB of float32 claimed, a few hundred bytes on disk: unwritten chunks are 0
    zarr.create_array(str(path), shape=(80, 512, 512), dtype="float32", chunks=(16, 256, 256), zarr_format=2)
    whole = read_variable(path, "array")
    assert whole.shape == (512, 512, 80) and not whole.any()


def test_an_image_picked_from_a_store_of_several_knows_its_own_levels(tmp_path):
    path = tmp_path / "plate.ome.zarr"
    _bioformats2raw_store(path, series=2)
    for variable in ("1", "1/1"):
        volume = load_volume(path, variable)
        assert [level.path for level in volume.metadata["levels"]] == ["1/0", "1/1"]
    assert volume.metadata["level"] == "1/1"
