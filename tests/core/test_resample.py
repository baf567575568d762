"""core.resample: separable linear interpolation."""

from __future__ import annotations

import numpy as np

from voxelstudio.core.resample import resample_axes


def test_resample_axes_interpolates_linearly_and_clamps() -> None:
    array = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    out = resample_axes(array, [np.array([0.0, 0.5, 1.0, 3.0]), np.array([0.0]), np.array([1.0])])
    np.testing.assert_allclose(out[:, 0, 0], [1.0, 3.0, 5.0, 5.0])
