"""kill -9 during export: no partial output under the final name, the input intact, leftovers hidden and cleaned."""

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
    assert leftover.name.startswith(".scan.npy.") and leftover.name.endswith(".tmp.npy")

    # the next export of the same file removes the dead writer's leftover and succeeds
    assert main(["convert", str(source), str(out), "--overwrite"]) == 0
    assert _temporaries(out_dir) == [] and visible_files(out_dir) == ["scan.npy"]
    np.testing.assert_array_equal(load_volume(out).data, load_volume(source).data)


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
    live, dead = tmp_path / ".scan.npy.0123abcd.tmp.npy", tmp_path / ".scan.npy.89abcdef.tmp.npy"
    other, unrelated = tmp_path / ".other.npy.0123abcd.tmp.npy", tmp_path / ".scan.npy.backup"
    for path in (live, dead, other, unrelated):
        path.write_bytes(b"partial")
    with open(live, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a writer still at work holds its temporary file's lock
        assert remove_stale_temporaries(target) == [dead]
        assert live.exists()
    assert remove_stale_temporaries(target) == [live]  # its writer is gone now
    assert sorted(os.listdir(tmp_path)) == [other.name, unrelated.name]
    assert is_temporary(other) and not is_temporary(unrelated) and not is_temporary(target)
