"""A full disk: a real 1 MB tmpfs (when mounting is permitted) and patched writers give one clear error, no file."""

from __future__ import annotations

import errno
import os
import subprocess
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from voxelstudio.cli import main
from voxelstudio.core.errors import VolumeWriteError
from voxelstudio.core.volume import Volume
from voxelstudio.io import matlab73, save_volume

BIG = (80, 80, 64)  # 1.6 MB of incompressible float32: more than the 1 MB disk holds
FORMATS = {
    "npy": ("v.npy", {}),
    "npz": ("v.npz", {}),
    "tif": ("v.tif", {}),
    "mat5": ("v.mat", {}),
    "mat73": ("v.mat", {"mat_version": "7.3"}),
}


def _noise(shape=BIG, seed=0) -> Volume:
    return Volume(np.random.default_rng(seed).random(shape).astype(np.float32))


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MB tmpfs mounted for this test (needs root / CAP_SYS_ADMIN; skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {getattr(exc, 'stderr', b'') or exc}")
    yield disk
    if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _assert_clear_error(info: pytest.ExceptionInfo, path: Path) -> None:
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "no space left on device" in message.lower()


@pytest.mark.parametrize("kind", [*FORMATS, "mat73-direct"])
def test_full_tmpfs_gives_a_clear_error_and_no_file(small_disk, monkeypatch, kind):
    name, options = FORMATS["mat73" if kind == "mat73-direct" else kind]
    if kind == "mat73-direct":  # large v7.3 files skip the in-memory image: the free-space check refuses them
        monkeypatch.setattr(matlab73, "IN_MEMORY_MAX_BYTES", 0)
    path = small_disk / name
    with pytest.raises(VolumeWriteError) as info:
        save_volume(_noise(), path, **options)
    _assert_clear_error(info, path)
    assert os.listdir(small_disk) == []  # neither the partial file nor the temporary one


def test_full_tmpfs_keeps_the_previous_file_on_overwrite(small_disk):
    path = save_volume(_noise((16, 16, 8)), small_disk / "v.tif")
    before = path.read_bytes()
    with pytest.raises(VolumeWriteError) as info:
        save_volume(_noise(), path, overwrite=True)
    _assert_clear_error(info, path)
    assert path.read_bytes() == before and os.listdir(small_disk) == ["v.tif"]


def test_cli_convert_onto_a_full_tmpfs_exits_2_with_one_line(small_disk, tmp_path, capsys):
    source = save_volume(_noise(), tmp_path / "in.npy")
    assert main(["convert", str(source), str(small_disk / "out.mat")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"voxelstudio: error: {small_disk / 'out.mat'}: could not write the file (No space left on device)"
    assert os.listdir(small_disk) == []


# ---- patched writers: run everywhere -----------------------------------------------------------------------------

Usage = namedtuple("Usage", "total used free")


def _short_write(handle, array, **kwargs):
    """What np.save does when the disk fills: part of the data lands, then numpy reports a short write."""
    handle.write(b"\x93NUMPY partial")
    raise OSError("409600 requested and 87008 written")


@pytest.mark.parametrize(("free", "problem"), [(0, "No space left on device"), (10**12, "stopped after 87008 of")])
def test_short_writes_are_reported_as_a_full_disk_only_when_it_is(tmp_path, monkeypatch, free, problem):
    monkeypatch.setattr(np, "save", _short_write)
    monkeypatch.setattr("voxelstudio.core.atomic.shutil.disk_usage", lambda folder: Usage(10**12, 0, free))
    path = tmp_path / "v.npy"
    with pytest.raises(VolumeWriteError, match=problem) as info:
        save_volume(_noise((8, 8, 4)), path)
    assert str(info.value).startswith(f"{path}: could not write the file (")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_disk_full_when_flushing_or_renaming_leaves_no_file(tmp_path, monkeypatch, failing):
    """Delayed allocation (NFS, ext4) can report ENOSPC only at fsync; a rename can need a new directory block."""

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(f"voxelstudio.core.atomic.os.{failing}", full)
    path = tmp_path / "v.tif"
    with pytest.raises(VolumeWriteError) as info:
        save_volume(_noise((8, 8, 4)), path)
    _assert_clear_error(info, path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("disk", ["patched", "tmpfs"])
def test_cli_denoise_on_a_full_disk_exits_2_with_one_line(tiny_model, tmp_path, monkeypatch, capsys, request, disk):
    source = save_volume(_noise(), tmp_path / "scan.npy")
    if disk == "tmpfs":
        out_dir = request.getfixturevalue("small_disk")
    else:
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        monkeypatch.setattr(np, "save", _short_write)
        monkeypatch.setattr("voxelstudio.core.atomic.shutil.disk_usage", lambda folder: Usage(10**12, 10**12, 0))
    code = main(["denoise", str(source), "--model", str(tiny_model), "--out-dir", str(out_dir), "--format", "npy",
                 "--quiet"])  # fmt: skip
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"voxelstudio: error: {out_dir / 'scan.npy'}: could not write the file (No space left on device)"]
    assert os.listdir(out_dir) == []  # no output, no provenance sidecar, no temporary file
