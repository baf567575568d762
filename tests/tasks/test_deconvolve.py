"""Richardson-Lucy: equality with scikit-image, narrowing of blurred beads, progress, cancel, PSF sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import fftconvolve
from skimage.restoration import richardson_lucy as skimage_richardson_lucy

from voxelstudio.core.errors import Cancelled
from voxelstudio.core.progress import CancelToken, Progress
from voxelstudio.core.volume import Volume
from voxelstudio.metrics import bead_fwhm
from voxelstudio.sim import OpticsParams, make_psf
from voxelstudio.tasks.deconvolve import richardson_lucy, richardson_lucy_volume

BEADS = [(8, 8, 12), (8, 24, 14), (24, 10, 10), (22, 24, 13)]


def _gaussian(shape: tuple[int, int, int], centres: list, sigma: tuple[float, float, float]) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float64)
    return sum(np.exp(-sum((grid[i] - c[i]) ** 2 / (2 * sigma[i] ** 2) for i in range(3))) for c in centres)  # type: ignore[return-value]


@pytest.fixture
def psf() -> np.ndarray:
    kernel = _gaussian((9, 9, 15), [(4, 4, 7)], (1.2, 1.2, 3.0))
    return kernel / kernel.sum()


@pytest.fixture
def blurred(psf: np.ndarray) -> Volume:
    """Beads of sigma 1 voxel blurred by the elongated PSF, on a camera offset, with a little noise."""
    beads = _gaussian((32, 32, 24), BEADS, (1.0, 1.0, 1.0))
    image = fftconvolve(beads, psf, mode="same") * 1000 + 100
    image += np.random.default_rng(0).normal(0, 1.0, image.shape)
    return Volume(image.astype(np.float32), name="scan")


@pytest.mark.parametrize("psf_shape", [(5, 5, 7), (4, 6, 5)])
def test_loop_equals_scikit_image(psf_shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(1)
    image = rng.random((20, 18, 12)) + 0.1
    kernel = rng.random(psf_shape)
    kernel /= kernel.sum()
    ours = richardson_lucy(image, kernel, 6)
    theirs = skimage_richardson_lucy(image, kernel, num_iter=6, clip=False)
    np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-9)
    assert richardson_lucy(image.astype(np.float32), kernel, 2).dtype == np.float32


def test_deconvolution_shortens_elongated_beads(blurred: Volume, psf: np.ndarray) -> None:
    before = bead_fwhm(blurred.data)
    result = richardson_lucy_volume(blurred, psf=psf, iterations=30)
    after = bead_fwhm(result.data)
    assert result.shape == blurred.shape and result.data.dtype == np.float32
    assert result.data.min() >= 0
    assert before["n"] == after["n"] == len(BEADS)
    assert before["ratio"] > 2.0
    assert after["axial"] < 0.7 * before["axial"]
    assert after["ratio"] < 0.8 * before["ratio"]
    assert result.name == "scan_rl" and result.metadata["iterations"] == 30
    assert result.metadata["psf"] == "array"


def test_beads_near_the_top_and_bottom_slices_stay_in_place() -> None:
    """Light leaving the volume is not piled onto the border slices (nor pulled inwards) by the boundary handling."""
    core = _gaussian((9, 9, 15), [(4, 4, 7)], (1.2, 1.2, 3.0))
    tail = _gaussian((9, 9, 15), [(4, 4, 11)], (2.0, 2.0, 2.0))  # an asymmetric axial tail, as with aberrations
    kernel = core / core.sum() + 0.3 * tail / tail.sum()
    near_bottom, near_top = (12, 12, 2), (6, 6, 17)
    beads = _gaussian((24, 24, 20), [near_bottom, near_top], (1.0, 1.0, 1.0))
    scan = fftconvolve(beads, kernel / kernel.sum(), mode="same") * 1000 + 100
    scan += np.random.default_rng(0).normal(0, 1.0, scan.shape)
    result = richardson_lucy_volume(Volume(scan), psf=kernel, iterations=30).data
    for y, x, z in (near_bottom, near_top):
        assert abs(int(np.argmax(result[y, x, :])) - z) <= 1


def test_a_psf_of_even_size_or_off_centre_peak_is_taken_as_centred_on_its_brightest_voxel(blurred: Volume) -> None:
    odd = _gaussian((9, 9, 15), [(4, 4, 7)], (1.2, 1.2, 3.0))  # brightest voxel at the centre
    even = np.pad(odd, ((1, 0), (1, 0), (1, 0)))  # the same PSF, its brightest voxel at n // 2 of 10, 10, 16
    off_centre = np.pad(odd, ((0, 0), (0, 0), (0, 2)))  # the same PSF, its brightest voxel 1 plane off the centre

    reference = richardson_lucy_volume(blurred, psf=odd, iterations=10).data
    for psf in (even, off_centre):
        np.testing.assert_allclose(richardson_lucy_volume(blurred, psf=psf, iterations=10).data, reference, atol=1e-5)
    with pytest.raises(ValueError, match=r"brightest voxel is on its edge along z \(index 0 of 15\)"):
        richardson_lucy_volume(blurred, psf=_gaussian((9, 9, 15), [(4, 4, 0)], (1.2, 1.2, 3.0)), iterations=1)


def test_output_ignores_the_camera_offset(blurred: Volume, psf: np.ndarray) -> None:
    shifted = blurred.replace(data=blurred.data * 3 + 500)
    np.testing.assert_allclose(
        richardson_lucy_volume(shifted, psf=psf, iterations=5).data,
        richardson_lucy_volume(blurred, psf=psf, iterations=5).data,
        rtol=1e-3,
        atol=1e-4,
    )


def test_reports_every_iteration_and_cancels_between_them(blurred: Volume, psf: np.ndarray) -> None:
    seen: list[Progress] = []
    richardson_lucy_volume(blurred, psf=psf, iterations=4, report=seen.append)
    assert [p.done for p in seen] == [0, 1, 2, 3, 4]
    assert all(p.total == 4 for p in seen)

    token = CancelToken()

    def cancel_after_two(progress: Progress) -> None:
        if progress.done == 2:
            token.cancel()

    with pytest.raises(Cancelled, match="deconvolution cancelled"):
        richardson_lucy_volume(blurred, psf=psf, iterations=10, report=cancel_after_two, cancel=token)


def test_psf_from_a_file_and_as_a_volume(blurred: Volume, psf: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "psf.npy"
    np.save(path, (psf * 7).astype(np.float32))  # any scale: the PSF is normalised to sum 1
    expected = richardson_lucy_volume(blurred, psf=psf, iterations=3).data
    from_file = richardson_lucy_volume(blurred, psf=path, iterations=3)
    np.testing.assert_allclose(from_file.data, expected, rtol=1e-4, atol=1e-5)
    assert from_file.metadata["psf"] == str(path)
    from_volume = richardson_lucy_volume(blurred, psf=Volume(psf, name="measured"), iterations=3)
    np.testing.assert_allclose(from_volume.data, expected, rtol=1e-4, atol=1e-5)
    scan = blurred.replace(spacing=(0.1, 0.1, 0.3))  # a PSF recorded on a 3x finer z grid blurs 3x too long
    with pytest.raises(ValueError, match=r"finer: voxel size \(0.1, 0.1, 0.1\) differs from the volume's"):
        richardson_lucy_volume(scan, psf=Volume(psf, (0.1, 0.1, 0.1), name="finer"), iterations=3)
    same = richardson_lucy_volume(scan, psf=Volume(psf, (0.1, 0.1, 0.3), name="same"), iterations=3)
    np.testing.assert_allclose(same.data, expected, rtol=1e-4, atol=1e-5)


def test_simulated_psf_from_optics() -> None:
    beads = _gaussian((24, 24, 16), [(12, 12, 8)], (1.5, 1.5, 4.0)) * 50 + 10
    volume = Volume(beads.astype(np.float32), spacing=(0.1, 0.1, 0.2), name="b")
    result = richardson_lucy_volume(volume, optics=OpticsParams(na=1.3), iterations=5)
    psf_shape = (23, 23, 15)  # the volume's shape made odd (within the task's PSF size limit)
    psf = make_psf(OpticsParams(na=1.3), psf_shape, (0.1, 0.1, 0.2))
    np.testing.assert_allclose(result.data, richardson_lucy_volume(volume, psf=psf, iterations=5).data, rtol=1e-5)
    other = richardson_lucy_volume(volume, optics=OpticsParams(na=1.0), iterations=5)
    assert not np.allclose(other.data, result.data, rtol=1e-3)  # the optics shape the PSF
    assert "NA 1.3" in result.metadata["psf"] and "0.1, 0.1, 0.2" in result.metadata["psf"]
    with pytest.raises(ValueError, match="b: voxel size not in the file, and the simulated PSF needs it"):
        richardson_lucy_volume(volume.replace(spacing=(1.0, 1.0, 1.0)), iterations=2)  # (1, 1, 1): unknown


def test_invalid_requests_are_refused(blurred: Volume, psf: np.ndarray) -> None:
    with pytest.raises(ValueError, match="iterations"):
        richardson_lucy_volume(blurred, psf=psf, iterations=0)
    with pytest.raises(ValueError, match="3-D"):
        richardson_lucy_volume(blurred, psf=psf[:, :, 0], iterations=1)
    with pytest.raises(ValueError, match="no positive values"):
        richardson_lucy_volume(blurred, psf=-psf, iterations=1)
