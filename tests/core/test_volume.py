"""The Volume model: float32 read-only data, validated spacing, immutability and replace()."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from voxelstudio.core.volume import Volume, is_constant


@pytest.fixture
def cube() -> np.ndarray:
    return np.arange(4 * 5 * 6, dtype=np.float64).reshape(4, 5, 6)


@pytest.mark.parametrize("dtype", ["float64", "uint16", "int32", "bool"])
def test_data_becomes_read_only_float32(cube, dtype) -> None:
    volume = Volume(cube.astype(dtype))
    assert volume.data.dtype == np.float32
    np.testing.assert_array_equal(volume.data, cube.astype(dtype).astype(np.float32))
    assert not volume.data.flags.writeable
    with pytest.raises(ValueError):
        volume.data[0, 0, 0] = 1.0


def test_writeable_float32_input_is_copied_so_the_caller_cannot_change_the_volume(cube) -> None:
    source = cube.astype(np.float32)
    volume = Volume(source)
    source[0, 0, 0] = 999.0
    assert volume.data[0, 0, 0] == 0.0
    assert source.flags.writeable


def test_read_only_float32_input_is_used_without_a_copy(cube) -> None:
    source = cube.astype(np.float32)
    source.flags.writeable = False
    assert np.shares_memory(Volume(source).data, source)


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 6, 1), (7,)])
def test_only_3d_arrays_are_volumes(shape) -> None:
    with pytest.raises(ValueError, match="3-D"):
        Volume(np.zeros(shape))


def test_spacing_is_stored_as_three_floats(cube) -> None:
    volume = Volume(cube, spacing=[1, 2, np.float32(0.5)])
    assert volume.spacing == (1.0, 2.0, 0.5)
    assert all(type(s) is float for s in volume.spacing)
    assert Volume(cube).spacing == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("spacing", [(1, 1), (1, 1, 1, 1), (0, 1, 1), (1, -2, 1), (1, 1, np.nan), (np.inf, 1, 1)])
def test_invalid_spacing_is_refused(cube, spacing) -> None:
    with pytest.raises(ValueError, match="spacing must be three positive finite numbers"):
        Volume(cube, spacing=spacing)


def test_fields_and_metadata_cannot_be_changed(cube) -> None:
    metadata = {"variable": "voxel"}
    volume = Volume(cube, name="scan", source="data/scan.mat", metadata=metadata)
    with pytest.raises(dataclasses.FrozenInstanceError):
        volume.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        volume.metadata["variable"] = "x"  # type: ignore[index]
    metadata["variable"] = "changed"
    assert volume.metadata["variable"] == "voxel"
    assert volume.source == Path("data/scan.mat")


def test_shape_nbytes_and_repr(cube) -> None:
    volume = Volume(cube, spacing=(0.5, 0.5, 2.0), name="scan")
    assert volume.shape == (4, 5, 6)
    assert volume.nbytes == 4 * 5 * 6 * 4
    assert repr(volume) == "Volume(name='scan', shape=(4, 5, 6), spacing=(0.5, 0.5, 2.0))"


def test_label_names_the_file_else_the_name(cube) -> None:
    assert Volume(cube, name="scan", source=Path("data/scan.mat")).label == str(Path("data/scan.mat"))
    assert Volume(cube, name="scan").label == "scan"
    assert Volume(cube).label == "unnamed volume"


def test_is_constant_means_one_value_everywhere() -> None:
    assert is_constant(np.full((2, 3, 4), 7.0)) and is_constant(np.zeros((1, 1, 1)))
    assert not is_constant(np.arange(24.0).reshape(2, 3, 4))
    assert not is_constant(np.zeros((0, 4, 4)))  # nothing at all is not one value


def test_replace_merges_metadata_and_revalidates(cube) -> None:
    original = Volume(cube, spacing=(1, 1, 2), name="raw", metadata={"variable": "voxel", "format": "mat-v5"})

    changed = original.replace(data=cube * 2, name="denoised", metadata={"format": "npz", "model": "unet"})

    assert dict(changed.metadata) == {"variable": "voxel", "format": "npz", "model": "unet"}
    assert changed.name == "denoised"
    assert changed.spacing == original.spacing
    assert changed.data.dtype == np.float32 and not changed.data.flags.writeable
    np.testing.assert_array_equal(changed.data, (cube * 2).astype(np.float32))
    assert dict(original.metadata) == {"variable": "voxel", "format": "mat-v5"}
    assert original.name == "raw"
    with pytest.raises(ValueError, match="spacing"):
        original.replace(spacing=(1, 0, 1))
