"""Suite-wide test ordering."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the GUI tests first.

    TensorFlow exports its bundled LLVM symbols process-wide; Mesa's llvmpipe (the OpenGL that VTK gets under Xvfb)
    then resolves its own LLVM calls into TensorFlow's copy and segfaults while compiling shaders. The app creates
    its OpenGL panels before it imports TensorFlow; the suite must do the same, so windows come before the
    non-GUI tests that import TensorFlow.
    """
    items.sort(key=lambda item: item.get_closest_marker("gui") is None)
