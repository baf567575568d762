"""MAT-files: v5 via scipy and v7.3 via h5py give the same (H, W, Z) array; the v7.3 writer makes MATLAB files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
from scipy.io.matlab import matfile_version

from voxelstudio.core.volume import Volume
from voxelstudio.io import (
    VolumeReadError,
    VolumeWriteError,
    list_variables,
    load_volume,
    save_volume,
    summarize_file,
)
from voxelstudio.io import matlab as matlab_format

MATLAB_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Feb 07 02:29:00 2014 HDF5 schema 1.00 .".ljust(116)
    + b"\x00" * 8
    + b"\x00\x02IM"
)


def _write_like_matlab(path, variables: dict[str, np.ndarray]) -> None:
    """What MATLAB's ``save -v7.3`` produces for double arrays: transposed datasets tagged with MATLAB_class."""
    with h5py.File(path, "w", userblock_size=512) as file:
        for name, array in variables.items():
            file.create_dataset(name, data=array.T).attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as handle:
        handle.write(MATLAB_HEADER)


def test_v5_and_v73_files_read_as_the_same_matlab_ordered_array(tmp_path, asymmetric) -> None:
    scipy.io.savemat(tmp_path / "v5.mat", {"voxel": asymmetric})
    _write_like_matlab(tmp_path / "v73.mat", {"voxel": asymmetric})

    from_v5 = load_volume(tmp_path / "v5.mat")
    from_v73 = load_volume(tmp_path / "v73.mat")

    assert from_v5.shape == from_v73.shape == (5, 7, 3)
    np.testing.assert_array_equal(from_v5.data, asymmetric.astype(np.float32))
    np.testing.assert_array_equal(from_v73.data, from_v5.data)
    assert from_v73.data[4, 6, 2] == asymmetric[4, 6, 2]  # the last element, not a transposed neighbour
    assert from_v5.metadata["format"] == "mat-v5"
    assert from_v73.metadata["format"] == "mat-v7.3"


def test_v73_writer_produces_a_matlab_7_3_file(tmp_path, asymmetric) -> None:
    path = save_volume(Volume(asymmetric, spacing=(0.1, 0.2, 0.3)), tmp_path / "out.mat", mat_version="7.3")

    header = path.read_bytes()[:128]
    assert header.startswith(b"MATLAB 7.3 MAT-file, Platform: ")
    assert b"HDF5 schema 1.00 ." in header[:116]
    assert header[116:124] == b"\x00" * 8
    assert header[124:128] == b"\x00\x02IM"
    assert matfile_version(str(path)) == (2, 0)
    with h5py.File(path, "r") as file:
        assert file.userblock_size == 512
        assert file["voxel"].shape == (3, 7, 5)  # MATLAB's column-major order as HDF5 sees it
        assert file["voxel"].attrs["MATLAB_class"] == b"single"
        np.testing.assert_array_equal(file["voxel"][()].T, asymmetric.astype(np.float32))
        assert file["voxel_size_um"].shape == (3, 1)  # a 1x3 row vector in MATLAB
        assert file["voxel_size_um"].attrs["MATLAB_class"] == b"double"
    back = load_volume(path)
    np.testing.assert_array_equal(back.data, asymmetric.astype(np.float32))
    assert back.spacing == (0.1, 0.2, 0.3)


def test_default_writer_is_compressed_v5_that_scipy_reads(tmp_path, asymmetric) -> None:
    path = save_volume(Volume(asymmetric, spacing=(0.1, 0.2, 0.3)), tmp_path / "out.mat")

    assert matfile_version(str(path)) == (1, 0)
    assert int.from_bytes(path.read_bytes()[128:132], "little") == 15  # miCOMPRESSED
    contents = scipy.io.loadmat(path)
    assert contents["voxel"].dtype == np.float32
    np.testing.assert_array_equal(contents["voxel"], asymmetric.astype(np.float32))
    np.testing.assert_allclose(contents["voxel_size_um"], [[0.1, 0.2, 0.3]])


def test_volumes_too_large_for_v5_are_written_as_v73(tmp_path, asymmetric, monkeypatch) -> None:
    monkeypatch.setattr(matlab_format, "MAT_V5_MAX_BYTES", 64)
    volume = Volume(asymmetric)

    path = save_volume(volume, tmp_path / "auto.mat")
    assert h5py.is_hdf5(path)
    np.testing.assert_array_equal(load_volume(path).data, volume.data)
    with pytest.raises(VolumeWriteError, match="too large for MAT v5"):
        save_volume(volume, tmp_path / "forced.mat", mat_version="5")
    assert not (tmp_path / "forced.mat").exists()


@pytest.mark.parametrize("version", ["6", "4", "7.4", ""])
def test_unknown_mat_versions_are_refused(tmp_path, asymmetric, version) -> None:
    with pytest.raises(VolumeWriteError, match="unknown MAT version"):
        save_volume(Volume(asymmetric), tmp_path / "out.mat", mat_version=version)


@pytest.mark.parametrize("name", ["1abc", "has space", "voxel_size_um", "x" * 64, "ümlaut"])
def test_unusable_matlab_variable_names_are_refused(tmp_path, asymmetric, name) -> None:
    with pytest.raises(VolumeWriteError, match="not a usable MATLAB variable name"):
        save_volume(Volume(asymmetric), tmp_path / "out.mat", variable=name)


def test_spacing_variable_is_metadata_not_a_volume(tmp_path, asymmetric) -> None:
    scipy.io.savemat(tmp_path / "s.mat", {"scan": asymmetric, "voxel_size_um": np.array([[0.2, 0.3, 1.5]])})

    assert [v.name for v in list_variables(tmp_path / "s.mat")] == ["scan"]
    volume = load_volume(tmp_path / "s.mat")
    assert volume.metadata["variable"] == "scan"
    assert volume.spacing == (0.2, 0.3, 1.5)


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_trailing_singleton_channel_is_squeezed(tmp_path, asymmetric, version) -> None:
    with_channel = asymmetric[..., np.newaxis]
    if version == "5":
        scipy.io.savemat(tmp_path / "c.mat", {"voxel": with_channel})
    else:
        _write_like_matlab(tmp_path / "c.mat", {"voxel": with_channel})

    assert list_variables(tmp_path / "c.mat")[0].shape == (5, 7, 3, 1)
    np.testing.assert_array_equal(load_volume(tmp_path / "c.mat").data, asymmetric.astype(np.float32))


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_a_2d_image_is_one_plane(tmp_path, asymmetric, version) -> None:
    """MATLAB saves an H x W x 1 array as H x W: it loads as the one-plane volume it was."""
    plane = asymmetric[:, :, 1]
    if version == "5":
        scipy.io.savemat(tmp_path / "p.mat", {"voxel": plane})
    else:
        _write_like_matlab(tmp_path / "p.mat", {"voxel": plane})

    assert list_variables(tmp_path / "p.mat")[0].is_volume
    np.testing.assert_array_equal(load_volume(tmp_path / "p.mat").data, plane[:, :, np.newaxis].astype(np.float32))


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_logical_arrays_load_as_zeros_and_ones(tmp_path, asymmetric, version) -> None:
    mask = asymmetric > 20
    if version == "5":
        scipy.io.savemat(tmp_path / "m.mat", {"voxel": mask})
    else:
        with h5py.File(tmp_path / "m.mat", "w", userblock_size=512) as file:
            dataset = file.create_dataset("voxel", data=mask.T.astype(np.uint8))
            dataset.attrs["MATLAB_class"] = np.bytes_("logical")
            dataset.attrs["MATLAB_int_decode"] = np.int32(1)
        with open(tmp_path / "m.mat", "r+b") as handle:
            handle.write(MATLAB_HEADER)

    assert list_variables(tmp_path / "m.mat")[0].dtype == "bool"
    np.testing.assert_array_equal(load_volume(tmp_path / "m.mat").data, mask.astype(np.float32))


def test_complex_v5_variables_are_not_offered_as_volumes(tmp_path, asymmetric) -> None:
    scipy.io.savemat(tmp_path / "c.mat", {"field": asymmetric + 1j, "voxel": asymmetric})

    assert [v.name for v in list_variables(tmp_path / "c.mat")] == ["voxel"]


def _element(data_type: int, payload: bytes) -> bytes:
    """A MAT v5 data element: its tag, then ``payload`` padded to 8 bytes."""
    import struct

    return struct.pack("<2I", data_type, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _append_matlab_string_object(path, name: str) -> None:
    """What MATLAB's ``save -v7`` writes for a ``string`` object: an opaque-class (17) matrix with a name and no
    dimensions, its type system, its class and a nested matrix of object data."""
    import struct

    nested = _element(6, struct.pack("<2I", 13, 0)) + _element(5, struct.pack("<2i", 1, 1)) + _element(1, b"")
    nested += _element(6, struct.pack("<I", 7))
    body = _element(6, struct.pack("<2I", 17, 0)) + _element(1, name.encode()) + _element(1, b"MCOS")
    body += _element(1, b"string") + _element(14, nested)
    with open(path, "ab") as handle:
        handle.write(_element(14, body))


def test_a_matlab_object_beside_the_volume_is_listed_and_skipped(tmp_path, asymmetric) -> None:
    """A string, table or datetime saved with the volume is an opaque-class matrix without dimensions: scipy's
    whosmat fails on it, and the structural check once called the file corrupt."""
    path = tmp_path / "scan.mat"
    scipy.io.savemat(path, {"voxel": asymmetric}, do_compression=False)
    _append_matlab_string_object(path, "notes")
    listed = {v.name: (v.shape, v.dtype) for v in summarize_file(path).variables}  # what `voxelstudio info` shows
    assert listed == {"voxel": (asymmetric.shape, "float64"), "notes": ((), "opaque")}
    assert [v.name for v in list_variables(path)] == ["voxel"]  # what a variable picker offers
    np.testing.assert_array_equal(load_volume(path).data, asymmetric.astype(np.float32))
    with pytest.raises(VolumeReadError, match=r"scan\.mat: variable 'notes' is of unsupported type opaque"):
        load_volume(path, "notes")


def test_dimensions_stored_as_uint32_are_read(tmp_path, asymmetric) -> None:
    """Some writers store the dimensions as miUINT32 instead of miINT32; scipy reads them, and so do we."""
    path = tmp_path / "scan.mat"
    scipy.io.savemat(path, {"voxel": asymmetric}, do_compression=False)
    raw = bytearray(path.read_bytes())
    dims_tag = 128 + 8 + 16  # after the element's tag and the array flags
    assert raw[dims_tag] == 5  # miINT32
    raw[dims_tag] = 6  # miUINT32
    path.write_bytes(bytes(raw))
    np.testing.assert_array_equal(load_volume(path).data, asymmetric.astype(np.float32))
