"""The camera estimate recovers gain, offset and read noise from synthetic Poisson-Gaussian backgrounds."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.metrics.noise import DarkCamera, bead_mask, block_moments, dark_camera, estimate_camera, fit_camera


def _camera_scan(gain: float, offset: float, read: float, electrons: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (64, 64, 32)
    ramp = np.linspace(0.5, 1.5, shape[0])[:, None, None] * np.ones(shape)  # a range of means along y
    return gain * rng.poisson(electrons * ramp) + offset + read * rng.standard_normal(shape)


@pytest.mark.parametrize(("gain", "offset", "read", "electrons"), [(1.0, 100.0, 2.0, 20.0), (2.5, 300.0, 5.0, 30.0)])
def test_estimate_camera_recovers_gain_offset_and_read_noise(
    gain: float, offset: float, read: float, electrons: float
) -> None:
    scan = _camera_scan(gain, offset, read, electrons)
    estimate = estimate_camera(scan, np.zeros(scan.shape, dtype=bool))
    assert estimate.gain == pytest.approx(gain, rel=0.05)
    assert estimate.offset == pytest.approx(offset, abs=3 * estimate.offset_sd + 1)
    assert estimate.read_noise == pytest.approx(read, abs=1.0)
    assert 500 <= estimate.n_blocks <= 512  # a few blocks may be clipped as outliers
    assert 0 < estimate.gain_sd < 0.1 * gain


def test_the_read_noise_error_stays_finite_when_the_estimate_reaches_zero() -> None:
    """Fitted as a standard deviation, its slope vanished at 0 and the error came out as "0 ± 470806"."""
    estimates = [estimate_camera(_camera_scan(2.5, 100.0, 0.0, 20.0, seed), np.zeros((64, 64, 32), dtype=bool))
                 for seed in range(4)]  # fmt: skip
    assert min(e.read_noise for e in estimates) < 0.5  # some reach (nearly) 0
    for estimate in estimates:
        assert 0 < estimate.read_noise_sd < 5.0 and estimate.read_noise < 3.0


def test_a_gain_twice_as_large_is_measured_twice_as_large() -> None:
    low = estimate_camera(_camera_scan(1.0, 100.0, 2.0, 20.0), np.zeros((64, 64, 32), dtype=bool))
    high = estimate_camera(_camera_scan(2.0, 100.0, 2.0, 20.0), np.zeros((64, 64, 32), dtype=bool))
    assert high.gain / low.gain == pytest.approx(2.0, rel=0.06)


def test_bead_mask_covers_beads_and_spares_the_background() -> None:
    scan = _camera_scan(1.0, 100.0, 2.0, 20.0)
    scan[30:33, 30:33, 14:19] += 400.0
    mask = bead_mask(scan)
    assert mask[31, 31, 16] and mask[31, 31, 21]  # the bead and its axial rim
    assert mask.mean() < 0.05


def test_too_few_background_blocks_is_an_error() -> None:
    with pytest.raises(ValueError, match="only 3 background blocks"):
        fit_camera(np.ones(3), np.ones(3), np.ones(3), 256)


def test_a_background_without_noise_is_said_to_be_no_raw_scan(capfd: pytest.CaptureFixture[str]) -> None:
    clean = np.zeros((64, 64, 32))  # a target: beads floating in black, no camera noise
    clean[20, 30, 10] = clean[40, 12, 22] = 1.0
    with pytest.raises(ValueError, match=r"no noise at all \(a target or a denoised volume\?\): calibration needs raw"):
        estimate_camera(clean)
    assert "DLASCL" not in capfd.readouterr().out  # LAPACK's complaints on stdout (they broke calibrate --json)


def test_a_dark_stack_gives_the_offset_and_read_noise() -> None:
    rng = np.random.default_rng(5)
    dark = 101.5 + 3.2 * rng.standard_normal((64, 64, 8))
    dark[10, 10, :] += 400.0  # a hot pixel: the median over blocks ignores it
    camera = dark_camera(dark)
    assert camera.offset == pytest.approx(101.5, abs=0.1)
    assert camera.read_noise == pytest.approx(3.2, abs=0.1)
    assert 0 < camera.read_noise_sd < 0.1 and 0 < camera.offset_sd < 0.1
    assert dark_camera(dark[..., 0]).read_noise == pytest.approx(3.2, abs=0.15)  # one plane will do


@pytest.mark.parametrize(("shape", "message"), [((4, 64, 8), "at least 8x8 pixels"), ((8, 8, 2, 2), "2-D image")])
def test_a_stack_that_cannot_be_a_dark_one_is_refused(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dark_camera(np.zeros(shape))


def test_with_a_known_offset_and_read_noise_only_the_gain_is_fitted() -> None:
    scan = _camera_scan(2.5, 100.0, 5.0, 30.0)
    known = DarkCamera(offset=100.0, read_noise=5.0, offset_sd=0.01, read_noise_sd=0.01)
    estimate = fit_camera(*block_moments(scan, None), known=known)
    assert (estimate.offset, estimate.read_noise) == (100.0, 5.0)
    assert estimate.gain == pytest.approx(2.5, rel=0.04) and 0 < estimate.gain_sd < 0.1
    wrong = fit_camera(*block_moments(scan, None), known=DarkCamera(80.0, 5.0, 0.01, 0.01))
    assert wrong.gain < 0.9 * estimate.gain  # the offset is held, not fitted: a wrong one moves the gain
