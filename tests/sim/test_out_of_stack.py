"""Beads outside the stack: defocused light in the raw only, cut beads at the stack's top and bottom."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.sim import SimParams, simulate_pair
from voxelstudio.sim.beads import BLOB_TRUNCATE
from voxelstudio.sim.pair import out_of_stack_planes
from voxelstudio.sim.psf import axial_fwhm_um

SHAPE = (96, 96, 16)
# only the beads' own light, nearly noise-free
QUIET = SimParams(background=0.0, haze=0.0, read_noise=0.0, photons=5000.0, offset=0.0)
REACH = int(np.ceil(BLOB_TRUNCATE * QUIET.bead_sigma_vox))  # planes a cut bead's blob reaches into the stack


def extra_light(params: SimParams, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(raw with, raw without, target with, target without) the out-of-stack beads."""
    raw_on, target_on = simulate_pair(SHAPE, params, seed=seed)
    raw_off, target_off = simulate_pair(SHAPE, params.replace(out_of_stack=0.0), seed=seed)
    return raw_on, raw_off, target_on, target_off


def test_default_is_on_and_the_layer_is_a_few_psf_lengths() -> None:
    params = SimParams()
    assert params.out_of_stack == 2.0
    assert SimParams.ranges()["out_of_stack"] == (0.0, 3.0)
    fwhm = axial_fwhm_um(params.optics) / params.optics.z_step_um
    assert 6 < fwhm < 10  # NA 1.4 oil into water at 2 µm: about 8 planes of 0.1 µm
    layer, reserve = out_of_stack_planes(params, 64)
    assert layer == int(np.ceil(2 * fwhm)) and reserve == int(np.ceil(3 * fwhm))
    assert out_of_stack_planes(params.replace(out_of_stack=1.0), 64) == (int(np.ceil(fwhm)), reserve)
    assert out_of_stack_planes(params, 8) == (8, 8)  # capped at one stack depth
    assert out_of_stack_planes(params.replace(out_of_stack=0.0), 64) == (0, 0)
    assert out_of_stack_planes(params.replace(bead_density=0.0), 64) == (0, 0)


def test_outside_beads_add_light_to_the_raw_and_nothing_inside_the_target() -> None:
    raw_on, raw_off, target_on, target_off = extra_light(QUIET, seed=1)
    inner = slice(REACH, SHAPE[2] - REACH)
    np.testing.assert_array_equal(target_on[:, :, inner], target_off[:, :, inner])
    added = (raw_on - raw_off) / QUIET.photons
    assert added[:, :, inner].mean() > 0.2 * raw_off[:, :, inner].mean() / QUIET.photons
    # defocused light is spread out: it lifts most voxels, not a few bead-like spots
    assert np.mean(added[:, :, inner] > 0.002) > 0.5


def test_out_of_stack_light_scales_with_the_bead_density() -> None:
    amounts = []
    for density in (1e-4, 3e-4):
        added = [
            float(np.mean(on - off)) / QUIET.photons
            for on, off, _, _ in (extra_light(QUIET.replace(bead_density=density), seed) for seed in (2, 3))
        ]
        amounts.append(np.mean(added))
    assert amounts[0] > 0
    assert amounts[1] / amounts[0] == pytest.approx(3.0, rel=0.35)


def test_beads_cut_by_the_top_and_bottom_planes_appear_in_the_target() -> None:
    _, _, target_on, target_off = extra_light(QUIET.replace(bead_density=4e-4), seed=4)
    cut = target_on - target_off
    new = cut > 0.05
    planes = np.flatnonzero(new.any(axis=(0, 1)))
    assert planes.size, "no cut bead in the target"
    assert all(z < REACH or z >= SHAPE[2] - REACH for z in planes)
    top, bottom = new[:, :, 0], new[:, :, -1]
    assert top.any() and bottom.any()
    # their centres lie outside: each cut blob fades from the border plane into the stack
    assert np.all(cut[:, :, 0][top] >= cut[:, :, 1][top])
    assert np.all(cut[:, :, -1][bottom] >= cut[:, :, -2][bottom])
    assert target_on.max() <= 1.0 and target_on.min() == 0.0


def test_off_leaves_the_pair_as_before_and_the_cli_keeps_working() -> None:
    raw, target = simulate_pair((32, 32, 16), SimParams(out_of_stack=0.0), seed=5)
    raw_on, target_on = simulate_pair((32, 32, 16), SimParams(), seed=5)
    assert raw.shape == raw_on.shape == target.shape == target_on.shape == (32, 32, 16)
    assert not np.array_equal(raw, raw_on)


@pytest.mark.parametrize("cached", [False, True])
def test_the_stacks_light_is_the_linear_convolution_of_every_bead_inside_and_out(cached: bool) -> None:
    """The blur keeps only the stack's planes, so its FFT is shorter than a 'same' convolution of the whole layer;
    a bead anywhere in the reserves must still light the stack exactly as a direct convolution says."""
    from scipy.signal import fftconvolve

    from voxelstudio.sim.pair import _blurred_signal, psf_shape_for
    from voxelstudio.sim.psf import make_psf
    from voxelstudio.sim.psf_cache import PsfCache

    params = QUIET.replace(out_of_stack=3.0)
    shape = (40, 40, 16)
    _, reserve = out_of_stack_planes(params, shape[2])
    assert reserve == shape[2]  # full reserves: the case the shorter FFT is for
    beads = np.zeros((shape[0], shape[1], shape[2] + 2 * reserve), np.float32)
    beads[20, 20, [0, reserve - 1, reserve, reserve + 7, -reserve, -1]] = 1.0  # the far ends and both borders
    beads[1, 38, reserve // 2] = 0.5
    cache = PsfCache() if cached else None
    blurred = _blurred_signal(beads, params, shape, reserve, cache)

    psf_shape = (shape[0], shape[1], shape[2] + reserve)
    psf = (
        cache.psf(params.optics, psf_shape_for(psf_shape))
        if cached
        else make_psf(params.optics, psf_shape_for(psf_shape))
    )
    half = [n // 2 for n in psf.shape]
    full = fftconvolve(beads.astype(np.float64), psf.astype(np.float64), mode="full")
    direct = full[
        half[0] : half[0] + shape[0], half[1] : half[1] + shape[1], half[2] + reserve : half[2] + reserve + shape[2]
    ]
    gain = blurred.max() / direct.max()
    np.testing.assert_allclose(blurred, gain * direct, atol=1e-5 * blurred.max())
    assert blurred[:, :, 0].max() > 0 and blurred[:, :, -1].max() > 0  # beads outside do light the border planes
