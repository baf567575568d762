"""Atomic writes: a failed write leaves neither a partial file nor a temporary one; nothing is overwritten silently."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile

from voxelstudio.core.atomic import RESUMABLE, remove_stale_temporaries
from voxelstudio.core.volume import Volume
from voxelstudio.io import VolumeWriteError, load_volume, save_volume


def _fail_midway(*args, **kwargs):
    """Stands in for a library writer: writes some bytes, then the disk is full."""
    target = args[0]
    if hasattr(target, "write"):
        target.write(b"partial data")
    elif isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as handle:
            handle.write(b"partial data")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_creating_dataset(self, *args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


WRITERS = [
    ("v.tif", {}, tifffile, "imwrite", _fail_midway),
    ("v.npy", {}, np, "save", _fail_midway),
    ("v.npz", {}, np, "savez", _fail_midway),
    ("v.mat", {}, scipy.io, "savemat", _fail_midway),
    ("v73.mat", {"mat_version": "7.3"}, h5py.Group, "create_dataset", _fail_creating_dataset),
]


@pytest.mark.parametrize(("name", "options", "owner", "attribute", "replacement"), WRITERS)
def test_disk_full_midway_leaves_no_file_behind(
    tmp_path, asymmetric, monkeypatch, name, options, owner, attribute, replacement
) -> None:
    monkeypatch.setattr(owner, attribute, replacement)

    with pytest.raises(VolumeWriteError) as info:
        save_volume(Volume(asymmetric), tmp_path / name, **options)

    assert str(info.value) == f"{tmp_path / name}: could not write the file (No space left on device)"
    assert isinstance(info.value.__cause__, OSError)
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path, asymmetric, monkeypatch) -> None:
    path = save_volume(Volume(asymmetric), tmp_path / "v.tif")
    before = path.read_bytes()
    monkeypatch.setattr(tifffile, "imwrite", _fail_midway)

    with pytest.raises(VolumeWriteError):
        save_volume(Volume(asymmetric * 2), path, overwrite=True)

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["v.tif"]


def test_interrupted_write_removes_the_temporary_file(tmp_path, asymmetric, monkeypatch) -> None:
    def interrupted(handle, *args, **kwargs):
        handle.write(b"partial data")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_volume(Volume(asymmetric), tmp_path / "v.npy")
    assert os.listdir(tmp_path) == []


def test_existing_files_are_replaced_only_with_overwrite(tmp_path, asymmetric) -> None:
    path = save_volume(Volume(asymmetric), tmp_path / "v.npy")

    with pytest.raises(VolumeWriteError, match=r"v\.npy: already exists; pass --overwrite"):
        save_volume(Volume(asymmetric * 3), path)
    np.testing.assert_array_equal(load_volume(path).data, asymmetric.astype(np.float32))

    save_volume(Volume(asymmetric * 3), path, overwrite=True)
    np.testing.assert_array_equal(load_volume(path).data, (asymmetric * 3).astype(np.float32))
    assert os.listdir(tmp_path) == ["v.npy"]


def test_missing_folder_and_folder_targets_are_refused(tmp_path, asymmetric) -> None:
    with pytest.raises(VolumeWriteError, match="does not exist"):
        save_volume(Volume(asymmetric), tmp_path / "no" / "such" / "v.npy")
    (tmp_path / "taken.mat").mkdir()
    with pytest.raises(VolumeWriteError, match=r"taken\.mat: is a folder"):
        save_volume(Volume(asymmetric), tmp_path / "taken.mat", overwrite=True)


def test_volumes_with_nan_are_not_written(tmp_path, asymmetric) -> None:
    data = asymmetric.copy()
    data[1, 1, 1] = np.nan
    with pytest.raises(VolumeWriteError, match="NaN or Inf"):
        save_volume(Volume(data), tmp_path / "v.mat")
    assert os.listdir(tmp_path) == []


def test_mat_version_applies_only_to_mat_files(tmp_path, asymmetric) -> None:
    with pytest.raises(VolumeWriteError, match=r"applies to \.mat files only"):
        save_volume(Volume(asymmetric), tmp_path / "v.tif", mat_version="7.3")


def test_written_files_get_the_usual_permissions(tmp_path, asymmetric) -> None:
    umask = os.umask(0)
    os.umask(umask)
    path = save_volume(Volume(asymmetric), tmp_path / "v.npz")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    store = save_volume(Volume(asymmetric), tmp_path / "v.ome.zarr")  # a folder: others must be able to read it
    (tmp_path / "plain").mkdir()
    assert store.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_resumable_runs_state_is_not_swept_as_a_leftover(tmp_path):
    resumable = tmp_path / ".big.ome.zarr.0123abcd.partial"
    (resumable / "done").mkdir(parents=True)
    (resumable / RESUMABLE).write_text("{}")
    leftover = tmp_path / ".other.npy.89abcdef.partial"
    leftover.write_bytes(b"half a file")
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    assert remove_stale_temporaries(tmp_path / "next.npy") == [leftover]
    assert resumable.is_dir() and not leftover.exists()


def test_temporary_directory_is_hidden_kept_while_used_and_removed_after(tmp_path: Path) -> None:
    from voxelstudio.core.atomic import is_temporary, remove_stale_temporaries, temporary_directory

    with temporary_directory(tmp_path / "model.keras") as folder:
        (folder / "model.keras").write_bytes(b"partial")
        assert folder.parent == tmp_path and folder.name.startswith(".model.keras.") and is_temporary(folder)
        assert remove_stale_temporaries(tmp_path) == [] and folder.is_dir()  # its writer is alive
    assert list(tmp_path.iterdir()) == []


def test_a_store_being_written_is_not_swept_by_a_concurrent_write_into_its_folder(tmp_path: Path) -> None:
    """Another writer (a dask worker writing its sidecar) sweeps the folder while a Zarr store is half-written."""
    from voxelstudio.core.atomic import write_directory_atomically, write_json_atomically
    from voxelstudio.io.zarr_ import create_store

    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(6, 4, 5)

    def write(target: Path) -> None:
        array = create_store(target, (4, 5, 6), (1.0, 1.0, 1.0), "s", (6, 4, 5))
        write_json_atomically(tmp_path / "other.json", {})  # sweeps dead writers' temporaries from the folder
        array[...] = data

    write_directory_atomically(tmp_path / "s.ome.zarr", write)
    np.testing.assert_array_equal(load_volume(tmp_path / "s.ome.zarr").data, data.transpose(1, 2, 0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "s.ome.zarr"]
