"""message_of: the one line users see for an exception."""

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
