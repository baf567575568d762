"""kill -9 during export: no partial output under the final name nor with an output's suffix, the input intact,
leftovers hidden and removed by the next write into the folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import kill_hard, start, visible_files, wait_until

from voxelstudio.cli import main
from voxelstudio.core.atomic import is_temporary
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume

OUTPUT_SUFFIXES = (".npy", ".npz", ".mat", ".tif", ".tiff")

# ``voxelstudio convert`` that stops for a minute once the temporary file is complete, before the rename
STOP_BEFORE_RENAME = """
import sys, time
import voxelstudio.core.atomic as atomic
real_flush = atomic._flush_to_disk
def flush_then_wait(path):
    real_flush(path)
    print("written", flush=True)
    time.sleep(60)
atomic._flush_to_disk = flush_then_wait
from voxelstudio.cli import main
sys.exit(main(sys.argv[1:]))
"""

# ``voxelstudio convert`` with np.save slowed down: the array goes out in 64 kB pieces, 5 ms apart
SLOW_CONVERT = """
import io, sys, time
import numpy as np
real_save = np.save
def slow_save(handle, array, **kwargs):
    buffer = io.BytesIO()
    real_save(buffer, array, **kwargs)
    data = buffer.getvalue()
    for start in range(0, len(data), 1 << 16):
        handle.write(data[start:start + (1 << 16)])
        handle.flush()
        time.sleep(0.005)
np.save = slow_save
from voxelstudio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if is_temporary(p)]


def _with_output_suffix(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden ones and those in hidden folders included, that ends in a volume suffix."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() in OUTPUT_SUFFIXES)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    data = np.random.default_rng(0).random((96, 96, 48)).astype(np.float32)  # 1.7 MB: ~130 ms of slow writing
    return save_volume(Volume(data, spacing=(0.2, 0.2, 0.5)), tmp_path / "in" / "scan.mat")


@pytest.mark.parametrize("previous", [False, True], ids=["new-output", "overwrite"])
def test_kill_mid_write_leaves_no_partial_output(source, tmp_path, previous):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "scan.npy"
    if previous:
        save_volume(Volume(np.ones((8, 8, 4))), out)
    before_out = _digest(out) if previous else None
    before_in = _digest(source)

    log = tmp_path / "child.log"
    child = start(["-c", SLOW_CONVERT, "convert", str(source), str(out), "--overwrite"], log)
    wait_until(lambda: any(p.stat().st_size > 1 << 17 for p in _temporaries(out_dir)), child, log)
    kill_hard(child)

    assert _digest(source) == before_in
    if previous:
        assert _digest(out) == before_out  # the previous complete file, untouched
    else:
        assert not out.exists()
    assert visible_files(out_dir) == (["scan.npy"] if previous else [])
    (leftover,) = _temporaries(out_dir)  # hidden, named as a temporary, never taken for an output
    assert leftover.name.startswith(".scan.npy.") and leftover.name.endswith(".partial")
    assert _with_output_suffix(out_dir) == (["scan.npy"] if previous else [])

    # the next export of the same file removes the dead writer's leftover and succeeds
    assert main(["convert", str(source), str(out), "--overwrite"]) == 0
    assert _temporaries(out_dir) == [] and visible_files(out_dir) == ["scan.npy"]
    np.testing.assert_array_equal(load_volume(out).data, load_volume(source).data)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".mat", ".tif"])
def test_kill_during_export_of_each_format_leaves_nothing_with_its_suffix(source, tmp_path, suffix):
    """Killed with the whole volume in its temporary file, just before the rename: only a ``.partial`` remains, and
    the next write of any file into that folder removes it."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    log = tmp_path / "child.log"
    child = start(["-c", STOP_BEFORE_RENAME, "convert", str(source), str(out_dir / f"scan{suffix}")], log)
    wait_until(lambda: "written" in log.read_text(errors="replace"), child, log)
    kill_hard(child)

    assert _with_output_suffix(out_dir) == [] and visible_files(out_dir) == []
    (leftover,) = _temporaries(out_dir)
    assert leftover.is_file() and leftover.name.endswith(".partial") and leftover.stat().st_size > 0

    other = save_volume(Volume(np.ones((8, 8, 4), np.float32)), out_dir / "other.npy")  # another file, same folder
    assert sorted(os.listdir(out_dir)) == [other.name]


def test_kill_during_a_real_export(tmp_path):
    """The unpatched writer (MAT v5, compressed) killed as soon as its temporary file exists."""
    data = np.random.default_rng(1).random((192, 192, 96)).astype(np.float32)  # 14 MB of incompressible data
    source = save_volume(Volume(data), tmp_path / "big.npy")
    before_in = _digest(source)
    out = tmp_path / "big.mat"
    log = tmp_path / "child.log"
    child = start(["-m", "voxelstudio", "convert", str(source), str(out)], log)
    wait_until(lambda: bool(_temporaries(tmp_path)), child, log)
    kill_hard(child)

    assert _digest(source) == before_in
    assert not out.exists()
    assert visible_files(tmp_path) == ["big.npy", "child.log"]


def test_only_leftovers_of_dead_writers_are_removed(tmp_path):
    import fcntl  # POSIX only, like the locking it tests

    from voxelstudio.core.atomic import remove_stale_temporaries

    target = tmp_path / "scan.npy"
    live, dead = tmp_path / ".scan.npy.0123abcd.partial", tmp_path / ".scan.npy.89abcdef.partial"
    other, old = tmp_path / ".other.mat.0123abcd.partial", tmp_path / ".other.npy.0123abcd.tmp.npy"
    folder = tmp_path / ".model.keras.0123abcd.partial"  # a suffix-bound writer's temporary folder
    unrelated = tmp_path / ".scan.npy.backup"
    folder.mkdir()
    for path in (live, dead, other, old, unrelated, folder / "model.keras"):
        path.write_bytes(b"partial")
    with open(live, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a writer still at work holds its temporary file's lock
        assert remove_stale_temporaries(target) == sorted([dead, other, old, folder])  # any target in the folder
        assert live.exists()
    assert remove_stale_temporaries(tmp_path) == [live]  # its writer is gone now
    assert os.listdir(tmp_path) == [unrelated.name]
    assert is_temporary(live) and is_temporary(old) and is_temporary(folder / "model.keras")
    assert not is_temporary(unrelated) and not is_temporary(target)


def test_a_suffix_bound_writer_gets_its_suffix_inside_a_hidden_temporary_folder(tmp_path):
    from voxelstudio.core.atomic import write_atomically

    seen = []

    def write(temporary: Path) -> None:  # as Keras does: it accepts only *.keras names
        assert temporary.suffix == ".keras"
        seen.append(temporary)
        temporary.write_bytes(b"model")

    path = write_atomically(tmp_path / "model.keras", write)
    (temporary,) = seen
    assert temporary.name == "model.keras" and is_temporary(temporary) and is_temporary(temporary.parent)
    assert path.read_bytes() == b"model" and os.listdir(tmp_path) == ["model.keras"]  # the folder went too
