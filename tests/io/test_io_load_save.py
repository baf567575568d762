"""load_volume / save_volume across formats: round trips, variable choice, dtypes and memory use."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.io

from voxelstudio.core.errors import VolumeWriteError
from voxelstudio.core.volume import Volume
from voxelstudio.io import VariableInfo, VolumeReadError, list_variables, load_volume, read_variable, save_volume


def _write(path, array: np.ndarray) -> None:
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        scipy.io.savemat(path, {"voxel": array})


FORMATS = [("v.mat", {}), ("v73.mat", {"mat_version": "7.3"}), ("v.tif", {}), ("v.tiff", {}), ("v.npz", {})]


@pytest.mark.parametrize(("name", "options"), FORMATS)
def test_round_trip_keeps_values_spacing_and_names(tmp_path, asymmetric, name, options) -> None:
    volume = Volume(asymmetric, spacing=(0.25, 0.125, 0.75), name="scan")
    path = save_volume(volume, tmp_path / name, **options)

    back = load_volume(path)
    np.testing.assert_array_equal(back.data, volume.data)
    assert back.spacing == pytest.approx(volume.spacing)
    assert back.name == path.stem
    assert back.source == path
    assert back.metadata["format"] in {"mat-v5", "mat-v7.3", "imagej-tiff", "npz"}
    assert back.data.dtype == np.float32
    assert not back.data.flags.writeable


def test_saved_variable_defaults_to_the_loaded_name_then_voxel(tmp_path, asymmetric) -> None:
    scipy.io.savemat(tmp_path / "in.mat", {"raw": asymmetric})
    loaded = load_volume(tmp_path / "in.mat")

    save_volume(loaded, tmp_path / "kept.mat")
    save_volume(loaded, tmp_path / "renamed.mat", variable="clean")
    save_volume(Volume(asymmetric), tmp_path / "default.mat")

    assert scipy.io.whosmat(tmp_path / "kept.mat")[0][0] == "raw"
    assert scipy.io.whosmat(tmp_path / "renamed.mat")[0][0] == "clean"
    assert scipy.io.whosmat(tmp_path / "default.mat")[0][0] == "voxel"


def test_a_loaded_name_the_new_format_cannot_hold_becomes_voxel_but_a_given_one_is_refused(tmp_path, asymmetric):
    np.savez(tmp_path / "in.npz", **{"volume-488": asymmetric})  # a legal .npz key, no MATLAB or Python name
    loaded = load_volume(tmp_path / "in.npz")
    assert loaded.metadata["variable"] == "volume-488"

    assert scipy.io.whosmat(save_volume(loaded, tmp_path / "out.mat"))[0][0] == "voxel"
    assert load_volume(save_volume(loaded, tmp_path / "out.npz")).metadata["variable"] == "voxel"
    with pytest.raises(VolumeWriteError, match="'volume-488' is not a usable MATLAB variable name"):
        save_volume(loaded, tmp_path / "named.mat", variable="volume-488")


def test_voxel_is_preferred_then_the_only_3d_array(tmp_path, asymmetric) -> None:
    scipy.io.savemat(tmp_path / "both.mat", {"other": asymmetric * 2, "voxel": asymmetric})
    scipy.io.savemat(tmp_path / "one.mat", {"small": np.ones((2, 2)), "scan": asymmetric})

    np.testing.assert_array_equal(load_volume(tmp_path / "both.mat").data, asymmetric.astype(np.float32))
    np.testing.assert_array_equal(load_volume(tmp_path / "both.mat", "other").data, (asymmetric * 2).astype("f4"))
    assert load_volume(tmp_path / "one.mat").metadata["variable"] == "scan"


def test_several_candidates_raise_an_error_listing_them(tmp_path, asymmetric) -> None:
    scipy.io.savemat(tmp_path / "two.mat", {"a": asymmetric, "b": asymmetric[:4]})

    with pytest.raises(VolumeReadError) as info:
        load_volume(tmp_path / "two.mat")
    message = str(info.value)
    assert "two.mat" in message
    assert "a (5x7x3 float64)" in message
    assert "b (4x7x3 float64)" in message


def test_missing_variable_error_lists_what_is_available(tmp_path, asymmetric) -> None:
    np.savez(tmp_path / "v.npz", raw=asymmetric, spacing=np.array([1.0, 1.0, 2.0]))

    with pytest.raises(VolumeReadError, match=r"no variable named 'target'; available: raw \(5x7x3 float64\)$"):
        load_volume(tmp_path / "v.npz", variable="target")
    with pytest.raises(VolumeReadError, match="no variable named 'spacing'"):
        load_volume(tmp_path / "v.npz", variable="spacing")


def test_list_variables_reports_numeric_arrays_without_loading_them(tmp_path, asymmetric) -> None:
    scipy.io.savemat(
        tmp_path / "m.mat",
        {"voxel": asymmetric, "note": "text", "labels": np.arange(4, dtype=np.uint16), "voxel_size_um": [[1, 1, 1]]},
    )

    infos = list_variables(tmp_path / "m.mat")
    assert infos == [VariableInfo("voxel", (5, 7, 3), "float64"), VariableInfo("labels", (1, 4), "uint16")]
    assert [v.is_volume for v in infos] == [True, False]


def test_read_variable_returns_the_stored_array(tmp_path) -> None:
    labels = np.arange(12, dtype=np.int16).reshape(3, 4)
    scipy.io.savemat(tmp_path / "m.mat", {"labels": labels})

    raw = read_variable(tmp_path / "m.mat", "labels")
    assert raw.dtype == np.int16
    np.testing.assert_array_equal(raw, labels)


ACCEPTED_DTYPES = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float16"]


@pytest.mark.parametrize("dtype", [*ACCEPTED_DTYPES, "float32", "float64"])
@pytest.mark.parametrize("suffix", [".npy", ".mat"])
def test_accepted_dtypes_become_float32(tmp_path, asymmetric, dtype, suffix) -> None:
    if suffix == ".mat" and dtype == "float16":
        pytest.skip("MATLAB has no half-precision class")
    array = (asymmetric % 7 > 2) if dtype == "bool" else asymmetric.astype(dtype)
    path = tmp_path / f"v{suffix}"
    _write(path, array)

    volume = load_volume(path)
    assert volume.data.dtype == np.float32
    np.testing.assert_array_equal(volume.data, array.astype(np.float32))
    assert volume.metadata["source_dtype"] == dtype


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_integer_extremes_are_finite_and_load_as_float32(tmp_path, dtype) -> None:
    """Decision: int64/uint64 extremes are valid numbers; they load (rounded to float32), never refused."""
    info = np.iinfo(dtype)
    array = np.full((2, 3, 4), info.max, dtype=dtype)
    array[0, 0, 0] = info.min
    np.save(tmp_path / "extreme.npy", array)

    data = load_volume(tmp_path / "extreme.npy").data
    assert data[0, 0, 0] == np.float32(info.min)
    assert data[1, 2, 3] == np.float32(info.max)
    assert np.isfinite(data).all()


@pytest.mark.parametrize(("suffix", "stored"), [(".npy", "float32"), (".npy", "float64"), (".mat", "uint16")])
def test_reading_makes_at_most_one_extra_copy(tmp_path, suffix, stored) -> None:
    array = (np.random.default_rng(0).random((256, 256, 32)) * 1000).astype(stored)
    path = tmp_path / f"big{suffix}"
    _write(path, array)
    volume_bytes = array.size * 4

    tracemalloc.start()
    try:
        volume = load_volume(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert volume.nbytes == volume_bytes
    # the stored array, at most one float32 copy, and a bool mask for the finiteness check
    assert peak <= array.nbytes + 1.3 * volume_bytes + 2**20


def test_import_readers_imports_only_the_libraries_those_formats_need() -> None:
    import subprocess
    import sys

    code = (
        "import sys, voxelstudio.io as io; before = 'scipy.io' in sys.modules; "
        "io.import_readers(['a.MAT', 'b.unknown']); "
        "print(before, 'scipy.io' in sys.modules, 'h5py' in sys.modules, 'tifffile' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True", "False"]
