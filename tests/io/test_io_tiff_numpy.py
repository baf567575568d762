"""TIFF (ImageJ hyperstacks and plain stacks) and NumPy files: axes, spacing and metadata."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from voxelstudio.core.volume import Volume
from voxelstudio.io import list_variables, load_volume, save_volume


def test_tiff_is_written_as_an_imagej_zyx_hyperstack_with_spacing(tmp_path, asymmetric) -> None:
    path = save_volume(Volume(asymmetric, spacing=(0.2, 0.1, 0.5)), tmp_path / "v.tif")

    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        series = tif.series[0]
        assert series.axes == "ZYX"
        assert series.shape == (3, 5, 7)
        assert series.dtype == np.float32
        np.testing.assert_array_equal(series.asarray(), asymmetric.transpose(2, 0, 1).astype(np.float32))
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.5)
        assert tif.imagej_metadata["unit"] == "um"
        x_numerator, x_denominator = tif.pages.first.tags["XResolution"].value
        y_numerator, y_denominator = tif.pages.first.tags["YResolution"].value
        assert x_denominator / x_numerator == pytest.approx(0.1)
        assert y_denominator / y_numerator == pytest.approx(0.2)

    back = load_volume(path)
    np.testing.assert_array_equal(back.data, asymmetric.astype(np.float32))
    assert back.spacing == pytest.approx((0.2, 0.1, 0.5))
    assert back.metadata["variable"] is None
    assert back.metadata["format"] == "imagej-tiff"


def test_imagej_spacing_in_nanometres_is_converted_to_micrometres(tmp_path, asymmetric) -> None:
    stack = asymmetric.transpose(2, 0, 1).astype(np.float32)
    tifffile.imwrite(
        tmp_path / "nm.tif", stack, imagej=True, resolution=(1 / 50, 1 / 40), metadata={"spacing": 200, "unit": "nm"}
    )

    assert load_volume(tmp_path / "nm.tif").spacing == pytest.approx((0.04, 0.05, 0.2))


def test_an_unknown_imagej_unit_leaves_the_voxel_size_unknown_with_a_warning(tmp_path, asymmetric) -> None:
    stack = asymmetric.transpose(2, 0, 1).astype(np.float32)
    for unit, warns in (("furlong", True), ("pixel", False)):
        path = tmp_path / f"{unit}.tif"
        tifffile.imwrite(path, stack, imagej=True, resolution=(1 / 2, 1 / 2), metadata={"spacing": 3, "unit": unit})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert load_volume(path).spacing == (1.0, 1.0, 1.0)
        assert any(f"unknown ImageJ length unit '{unit}'" in str(w.message) for w in caught) == warns


def test_plain_multipage_tiff_reads_as_a_stack_with_unit_spacing(tmp_path, asymmetric) -> None:
    tifffile.imwrite(tmp_path / "plain.tiff", asymmetric.transpose(2, 0, 1).astype(np.uint16), photometric="minisblack")

    volume = load_volume(tmp_path / "plain.tiff")
    np.testing.assert_array_equal(volume.data, asymmetric.astype(np.uint16).astype(np.float32))
    assert volume.spacing == (1.0, 1.0, 1.0)
    assert volume.metadata["source_dtype"] == "uint16"


def test_single_slice_volume_round_trips_through_tiff(tmp_path, asymmetric) -> None:
    one_slice = asymmetric[:, :, :1]
    path = save_volume(Volume(one_slice, spacing=(1.0, 1.0, 2.0)), tmp_path / "one.tif")

    back = load_volume(path)
    assert back.shape == (5, 7, 1)
    np.testing.assert_array_equal(back.data, one_slice.astype(np.float32))
    assert back.spacing == pytest.approx((1.0, 1.0, 2.0))


def test_2d_images_in_tiff_and_npy_are_one_plane(tmp_path, asymmetric) -> None:
    """As in Fiji and napari: a single image opens as a stack of one."""
    plane = asymmetric[:, :, 0].astype(np.uint16)
    tifffile.imwrite(tmp_path / "image.tif", plane)
    np.save(tmp_path / "image.npy", plane)

    for name in ("image.tif", "image.npy"):
        volume = load_volume(tmp_path / name)
        np.testing.assert_array_equal(volume.data, plane[:, :, np.newaxis].astype(np.float32))


def test_tiff_series_are_listed_in_matlab_order(tmp_path, asymmetric) -> None:
    save_volume(Volume(asymmetric), tmp_path / "v.tif")
    [info] = list_variables(tmp_path / "v.tif")
    assert (info.name, info.shape, info.dtype) == ("series0", (5, 7, 3), "float32")


def test_npy_keeps_values_but_no_spacing(tmp_path, asymmetric) -> None:
    path = save_volume(Volume(asymmetric, spacing=(0.1, 0.2, 0.3)), tmp_path / "v.npy")

    assert np.load(path).dtype == np.float32
    back = load_volume(path)
    np.testing.assert_array_equal(back.data, asymmetric.astype(np.float32))
    assert back.spacing == (1.0, 1.0, 1.0)
    assert back.metadata == {"variable": None, "format": "npy", "source_dtype": "float32"}


def test_fortran_ordered_npy_is_read_correctly(tmp_path, asymmetric) -> None:
    np.save(tmp_path / "f.npy", np.asfortranarray(asymmetric))
    volume = load_volume(tmp_path / "f.npy")
    np.testing.assert_array_equal(volume.data, asymmetric.astype(np.float32))
    assert volume.data.flags.c_contiguous


def test_npz_stores_the_named_array_and_spacing(tmp_path, asymmetric) -> None:
    path = save_volume(Volume(asymmetric, spacing=(0.1, 0.2, 0.3)), tmp_path / "v.npz", variable="raw")

    with np.load(path) as archive:
        assert sorted(archive.files) == ["raw", "spacing"]
        np.testing.assert_allclose(archive["spacing"], [0.1, 0.2, 0.3])
    assert [v.name for v in list_variables(path)] == ["raw"]
    back = load_volume(path)
    assert back.metadata["variable"] == "raw"
    assert back.spacing == (0.1, 0.2, 0.3)


def test_ome_tiff_without_physical_size_y_takes_the_width_in_its_own_unit(tmp_path) -> None:
    path = tmp_path / "square.ome.tif"
    metadata = {"axes": "ZYX", "PhysicalSizeX": 100.0, "PhysicalSizeXUnit": "nm", "PhysicalSizeZ": 0.2}
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.float32), ome=True, metadata=metadata)
    assert load_volume(path).spacing == pytest.approx((0.1, 0.1, 0.2))


def test_ome_tiff_units_other_than_micrometres(tmp_path):
    stack = np.zeros((3, 4, 5), np.float32)  # z, y, x
    sizes = {"PhysicalSizeX": 1000, "PhysicalSizeY": 2000, "PhysicalSizeZ": 0.5}
    units = {"PhysicalSizeXUnit": "Å", "PhysicalSizeYUnit": "Å", "PhysicalSizeZUnit": "µm"}
    tifffile.imwrite(tmp_path / "a.ome.tif", stack, ome=True, metadata={"axes": "ZYX", **sizes, **units})
    assert load_volume(tmp_path / "a.ome.tif").spacing == pytest.approx((0.2, 0.1, 0.5))
    pixel_z = {**units, "PhysicalSizeZUnit": "pixel"}
    tifffile.imwrite(tmp_path / "b.ome.tif", stack, ome=True, metadata={"axes": "ZYX", **sizes, **pixel_z})
    with pytest.warns(UserWarning, match=r"b\.ome\.tif: unknown length unit 'pixel' of PhysicalSizeZ"):
        assert load_volume(tmp_path / "b.ome.tif").known_spacing is None
