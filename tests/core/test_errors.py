"""core.errors: the one line users see for an exception, and errors that cross process boundaries intact."""

from __future__ import annotations

import errno
import os

from voxelstudio.core.errors import VolumeReadError, message_of


def test_operating_system_errors_name_the_file_first() -> None:
    error = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "out/raw")
    assert message_of(error) == "out/raw: Not a directory"
    moved = OSError(errno.EXDEV, os.strerror(errno.EXDEV), "a.tmp", None, "b.mat")
    assert message_of(moved) == f"a.tmp -> b.mat: {os.strerror(errno.EXDEV)}"
    assert message_of(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) == os.strerror(errno.ENOSPC)  # no [Errno 28]


def test_other_errors_keep_their_text_on_one_line() -> None:
    assert message_of(ValueError("two\n  lines")) == "two lines"
    assert message_of(OSError("no errno here")) == "no errno here"
    assert message_of(VolumeReadError("a.mat", "file not found")) == "a.mat: file not found"


def test_errors_survive_the_trip_from_a_worker_process():
    """A dask worker or the job's child process raises them; pickling must give back the same error, message and
    attributes (the default pickling passed the message as the only argument: a TypeError, or "x cancelled
    cancelled")."""
    import pickle

    from voxelstudio.core.errors import Cancelled, ModelError, VolumeReadError, VolumeWriteError

    for error in (
        VolumeReadError("in.zarr", "the array contains NaN or Inf values"),
        VolumeWriteError(None, "disk full"),
        ModelError("m.keras", "cannot load the Keras model"),
    ):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
        assert (back.path, back.problem) == (error.path, error.problem)
    back = pickle.loads(pickle.dumps(Cancelled("block-wise prediction")))
    assert str(back) == "block-wise prediction cancelled" and back.what == "block-wise prediction"
