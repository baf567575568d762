"""Reading failures: every one is a one-line VolumeReadError naming the file, with library errors chained."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from voxelstudio.core.volume import Volume
from voxelstudio.io import (
    VolumeReadError,
    VolumeWriteError,
    check_volume_file,
    list_variables,
    load_volume,
    save_volume,
)
from voxelstudio.io import variables as variables_module


def _message(exc_info: pytest.ExceptionInfo[VolumeReadError]) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path) -> None:
    with pytest.raises(VolumeReadError) as info:
        load_volume(tmp_path / "absent.mat")
    assert _message(info) == f"{tmp_path / 'absent.mat'}: file not found"


def test_folder_instead_of_file(tmp_path) -> None:
    (tmp_path / "scan.tif").mkdir()
    with pytest.raises(VolumeReadError, match=r"scan\.tif: is a folder, not a file$"):
        load_volume(tmp_path / "scan.tif")


def test_zero_byte_file(tmp_path) -> None:
    (tmp_path / "empty.npy").touch()
    with pytest.raises(VolumeReadError, match=r"empty\.npy: file is empty \(0 bytes\)$"):
        list_variables(tmp_path / "empty.npy")


def test_unknown_suffix_for_reading_and_writing(tmp_path, asymmetric) -> None:
    (tmp_path / "scan.raw").write_bytes(b"\0" * 64)
    with pytest.raises(VolumeReadError, match=r"scan\.raw: unsupported file type '\.raw'; use \.mat"):
        load_volume(tmp_path / "scan.raw")
    with pytest.raises(VolumeWriteError, match=r"scan\.png: unsupported file type '\.png'"):
        save_volume(Volume(asymmetric), tmp_path / "scan.png")


def test_unreadable_file_is_reported_as_permission_denied(tmp_path, asymmetric, monkeypatch) -> None:
    path = save_volume(Volume(asymmetric), tmp_path / "locked.npy")
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if os.fspath(p) == os.fspath(path) else real_access(p, mode)
    )
    with pytest.raises(VolumeReadError, match=r"locked\.npy: permission denied"):
        load_volume(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_with_real_permissions(tmp_path, asymmetric) -> None:
    path = save_volume(Volume(asymmetric), tmp_path / "locked.npy")
    path.chmod(0)
    try:
        with pytest.raises(VolumeReadError, match="permission denied"):
            load_volume(path)
    finally:
        path.chmod(0o600)


def test_library_errors_are_wrapped_with_the_cause_chained(tmp_path) -> None:
    (tmp_path / "notes.mat").write_bytes(b"these are my notes, not a MAT-file\n" * 8)
    with pytest.raises(VolumeReadError) as info:
        load_volume(tmp_path / "notes.mat")
    assert info.value.__cause__ is not None
    assert info.value.path == tmp_path / "notes.mat"
    assert "notes.mat: cannot read the file" in _message(info)


def test_hdf5_that_is_not_matlab_is_refused(tmp_path, asymmetric) -> None:
    with h5py.File(tmp_path / "data.mat", "w") as file:
        file["voxel"] = asymmetric
    with pytest.raises(VolumeReadError, match=r"an HDF5 file but not a MATLAB 7\.3 MAT-file"):
        load_volume(tmp_path / "data.mat")


def test_arrays_that_do_not_fit_in_memory_are_refused_before_reading(tmp_path, asymmetric, monkeypatch) -> None:
    path = save_volume(Volume(asymmetric), tmp_path / "v.npy")

    class _Tight:
        available = 500

    monkeypatch.setattr(variables_module.psutil, "virtual_memory", lambda: _Tight())
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("the array was read before the memory check"))
    with pytest.raises(VolumeReadError) as info:
        load_volume(path)
    message = _message(info)
    assert "needs 840 B of memory to load but only 500 B is available" in message  # 105 values x (4 + 4) bytes


def test_claims_far_beyond_the_file_size_are_corrupt(tmp_path, monkeypatch) -> None:
    header = b"MATLAB 7.3 MAT-file, Platform: x, Created on: x HDF5 schema 1.00 .".ljust(116)
    with h5py.File(tmp_path / "sparse.mat", "w", userblock_size=512) as file:
        dataset = file.create_dataset("voxel", shape=(100, 1000, 1000), dtype="f8", chunks=(10, 10, 10))
        dataset.attrs["MATLAB_class"] = np.bytes_("double")
    with open(tmp_path / "sparse.mat", "r+b") as handle:
        handle.write(header + b"\0" * 8 + b"\x00\x02IM")

    class _Plenty:
        available = 2**60

    monkeypatch.setattr(variables_module.psutil, "virtual_memory", lambda: _Plenty())
    with pytest.raises(VolumeReadError, match=r"header claims 800\.0 MB of data for 'voxel' but the file is only"):
        load_volume(tmp_path / "sparse.mat")


def test_check_volume_file_reads_headers_only_and_names_the_file(tmp_path, asymmetric) -> None:
    import scipy.io

    good = save_volume(Volume(asymmetric, (0.1, 0.1, 0.3)), tmp_path / "good.mat")
    check_volume_file(good)
    two = tmp_path / "two.mat"
    scipy.io.savemat(two, {"a": asymmetric, "b": asymmetric})
    bad_spacing = tmp_path / "spacing.mat"
    scipy.io.savemat(bad_spacing, {"voxel": asymmetric, "voxel_size_um": np.array([[0.1, -1.0, 0.3]])})
    flat, complex_ = tmp_path / "flat.mat", tmp_path / "complex.mat"
    scipy.io.savemat(flat, {"voxel": asymmetric[:, 0, 0]})  # MATLAB's 1xN
    scipy.io.savemat(complex_, {"voxel": asymmetric * 1j})
    for path, problem in [(two, "several arrays could be the volume"), (bad_spacing, "voxel"),
                          (tmp_path / "none.mat", "file not found"), (flat, r"shape 1x5 \(a vector\)"),
                          (complex_, "is complex")]:  # fmt: skip
        with pytest.raises(VolumeReadError, match=problem) as error:
            check_volume_file(path)
        assert str(error.value).startswith(f"{path}: ")
    with pytest.raises(VolumeReadError):  # what the check refuses, loading refuses too
        load_volume(bad_spacing)


def test_a_folder_that_is_not_a_store_is_named_as_a_folder(tmp_path) -> None:
    from voxelstudio.io import summarize_file

    (tmp_path / "scans").mkdir()
    for read in (load_volume, summarize_file):
        with pytest.raises(VolumeReadError, match=r"scans: is a folder, not a volume file \(a Zarr store's name"):
            read(tmp_path / "scans")


def test_the_batch_check_refuses_a_file_too_large_for_memory_but_not_a_store(tmp_path, monkeypatch) -> None:
    """A Zarr store larger than memory is what block-wise denoising is for; a file must fit to be loaded."""
    from types import SimpleNamespace

    import zarr

    np.save(tmp_path / "v.npy", np.zeros((16, 16, 8), np.float32))
    zarr.create_array(str(tmp_path / "v.zarr"), shape=(8, 16, 16), dtype="float32", zarr_format=2)[...] = 0
    monkeypatch.setattr(variables_module.psutil, "virtual_memory", lambda: SimpleNamespace(available=1000))
    with pytest.raises(VolumeReadError, match="of memory to load but only"):
        check_volume_file(tmp_path / "v.npy")
    check_volume_file(tmp_path / "v.zarr")
