"""Start the Keras backend (TensorFlow, JAX or PyTorch) without TensorFlow's native start-up chatter on stderr.

TensorFlow's C++ core logs through Abseil before Abseil's logging is initialised, and such messages go straight to
file descriptor 2 whatever ``TF_CPP_MIN_LOG_LEVEL`` says ("WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR", then ``I0000 ...`` lines about oneDNN, CUDA stubs and CPU features, and on machines
without a GPU an ``E0000 ... cuInit`` line). A command-line user sees them as errors. :func:`start_tensorflow_quietly`
imports TensorFlow and lists its devices with descriptor 2 captured, then writes back everything except those
known lines. :func:`start_backend_quietly` does the same for whichever backend ``KERAS_BACKEND`` names.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\n"
    rb"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] [^\n]*\n"
    rb"|E\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] failed call to cuInit[^\n]*\n"
    rb"|To enable the following instructions: [^\n]*rebuild TensorFlow with the appropriate compiler flags\.\n"
)
"""Start-up lines of TensorFlow's native code (Abseil format); anything else passes through."""


def strip_noise(text: bytes) -> bytes:
    return NOISE.sub(b"", text)


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Capture file descriptor 2 (native and Python writes alike) and write it back without :data:`NOISE`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = strip_noise(capture.read())
            if kept:
                os.write(2, kept)


def start_backend_quietly() -> str:
    """Check ``KERAS_BACKEND`` (a one-line ``BackendError`` when unknown or not installed), then import Keras and
    enumerate the backend's devices (where TensorFlow prints its start-up lines) with stderr filtered.

    Returns the backend's name.
    """
    from voxelstudio.core.backends import BackendError, select_backend

    chosen = select_backend()
    if "keras" in sys.modules:
        return chosen
    try:
        with filtered_native_stderr():
            from voxelstudio.ml import backend

            backend.accelerators()
    except ImportError as exc:  # installed, yet it cannot start (a missing jaxlib, mismatched versions)
        raise BackendError(f"KERAS_BACKEND={chosen!r}: {chosen} is installed but cannot start ({exc})") from exc
    return chosen


start_tensorflow_quietly = start_backend_quietly
"""The name callers used before Keras' other backends were supported."""
