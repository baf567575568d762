"""core.atomic: output paths and folders are checked before long jobs start; stores are published by renames."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voxelstudio.core.atomic import check_destination, check_output_folder, same_file
from voxelstudio.core.errors import VolumeWriteError


def test_existing_and_makeable_folders_pass(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path) == tmp_path
    assert check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking makes nothing


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(VolumeWriteError, match=r"file: is a file, not a folder$"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(VolumeWriteError, match=r"file/a/b: cannot be a folder \(its parent .*/file is a file\)$"):
        check_output_folder(tmp_path / "file" / "a" / "b")


def test_a_read_only_parent_is_named(tmp_path: Path, monkeypatch) -> None:
    from voxelstudio.core import atomic

    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: Path(path) != locked)  # root may write anywhere
    with pytest.raises(VolumeWriteError, match=r"out: folder .*locked is not writable$"):
        check_output_folder(locked / "out")
    check_output_folder(tmp_path / "elsewhere")


def test_a_destination_under_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(VolumeWriteError, match=r"file/out\.tif: .*file is a file, not a folder$"):
        check_destination(tmp_path / "file" / "out.tif", overwrite=False)
    with pytest.raises(VolumeWriteError, match=r"folder .*missing does not exist$"):
        check_destination(tmp_path / "missing" / "out.tif", overwrite=False)


def test_a_store_published_over_a_file_or_a_store_leaves_nothing_aside(tmp_path):
    from voxelstudio.core.atomic import publish_directory

    for old in ("file", "store"):
        target = tmp_path / f"{old}.zarr"
        if old == "file":
            target.write_bytes(b"a file where the store goes")
        else:
            (target / "0").mkdir(parents=True)
        new = tmp_path / f".{old}.new"
        (new / "0").mkdir(parents=True)
        (new / "0" / "chunk").write_bytes(b"data")
        publish_directory(new, target, overwrite=True)
        assert (target / "0" / "chunk").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.zarr", "store.zarr"]


def test_same_file_sees_one_file_through_a_symlinked_folder_and_a_hard_link(tmp_path):
    (tmp_path / "real").mkdir()
    scan = tmp_path / "real" / "scan.npy"
    scan.write_bytes(b"x")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    os.link(scan, tmp_path / "linked.npy")
    (tmp_path / "copy.npy").write_bytes(b"x")
    assert same_file(scan, tmp_path / "alias" / "scan.npy") and same_file(scan, tmp_path / "linked.npy")
    assert same_file(tmp_path / "real" / "new.npy", tmp_path / "alias" / "new.npy")  # not written yet
    assert not same_file(scan, tmp_path / "copy.npy") and not same_file(scan, tmp_path / "missing.npy")
