"""OpticsParams / SimParams: documented ranges, validation, dict round-trip and random draws."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from voxelstudio.sim import OpticsParams, SimParams


@pytest.mark.parametrize("cls", [OpticsParams, SimParams])
def test_every_numeric_field_has_a_range_and_a_doc_and_defaults_lie_inside(cls: type) -> None:
    instance = cls()
    ranged = [f for f in dataclasses.fields(cls) if "range" in f.metadata]
    assert len(ranged) >= 9
    for f in ranged:
        low, high = f.metadata["range"]
        assert low < high, f.name
        assert low <= getattr(instance, f.name) <= high, f.name
        assert f.metadata["doc"], f.name


def test_ranges_lists_sim_and_optics_parameters() -> None:
    ranges = SimParams.ranges()
    assert ranges["photons"] == (10.0, 5000.0)
    assert ranges["optics.na"] == OpticsParams.ranges()["na"]
    assert "optics.depth_um" in ranges


def test_defaults_are_the_documented_microscope() -> None:
    optics = OpticsParams()
    assert (optics.na, optics.wavelength_um, optics.ni, optics.ns) == (1.4, 0.52, 1.515, 1.33)
    assert optics.voxel_size_um == (0.1, 0.1, 0.1)
    assert SimParams().bead_density == 1e-4
    assert SimParams().bead_sigma_vox == 1.0


def test_to_dict_from_dict_round_trip_through_json() -> None:
    params = SimParams(optics=OpticsParams(na=1.2, ni=1.33, depth_um=4.0), photons=321.0, haze=0.7)
    restored = SimParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert restored == params
    assert OpticsParams.from_dict(params.optics.to_dict()) == params.optics


def test_the_stack_direction_is_a_flag_kept_through_json_and_jitter() -> None:
    from voxelstudio.sim.jitter import jitter_params

    params = SimParams(optics=OpticsParams(z_reversed=True))
    assert SimParams.from_dict(json.loads(json.dumps(params.to_dict()))).optics.z_reversed
    assert "z_reversed" not in OpticsParams().to_dict()  # a forward stack's record reads as before the flag
    assert jitter_params(params, np.random.default_rng(0), 0.1).optics.z_reversed
    assert not SimParams.random(np.random.default_rng(0)).optics.z_reversed
    with pytest.raises(ValueError, match="z_reversed must be true or false, got 'yes'"):
        OpticsParams.from_dict({"z_reversed": "yes"})


def test_numpy_scalars_and_ints_are_stored_as_plain_floats() -> None:
    params = SimParams(photons=np.float32(100.0), offset=5, optics=OpticsParams(na=np.float64(1.3)))
    assert type(params.photons) is float and type(params.offset) is float and type(params.optics.na) is float
    assert json.loads(json.dumps(params.to_dict()))["photons"] == 100.0


def test_from_dict_fills_defaults_and_rejects_unknown_keys() -> None:
    assert SimParams.from_dict({"photons": 10.0}) == SimParams(photons=10.0)
    with pytest.raises(ValueError, match=r"unknown SimParams parameter.*photon_count"):
        SimParams.from_dict({"photon_count": 10.0})
    with pytest.raises(ValueError, match=r"unknown OpticsParams parameter.*NA"):
        SimParams.from_dict({"optics": {"NA": 1.2}})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: OpticsParams(na=1.45, ni=1.33), r"na \(1.45\) must be below"),
        (lambda: OpticsParams(wavelength_um=2.0), r"wavelength_um must be in \[0.4, 0.7\], got 2"),
        (lambda: SimParams(photons=0.0), r"photons must be in"),
        (lambda: SimParams(haze=float("nan")), "haze must be a finite number"),
        (lambda: SimParams(read_noise="2"), "read_noise must be a finite number"),
        (lambda: SimParams(optics={"na": 1.2}), "optics must be OpticsParams"),
    ],
)
def test_invalid_values_raise_one_clear_value_error(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_random_params_stay_in_range_vary_and_are_reproducible() -> None:
    draws = [SimParams.random(np.random.default_rng(seed)) for seed in range(40)]
    ranges = SimParams.ranges()
    for params in draws:
        flat = {k: v for k, v in params.to_dict().items() if k != "optics"}
        flat.update({f"optics.{k}": v for k, v in params.optics.to_dict().items()})
        for name, (low, high) in ranges.items():
            assert low <= flat[name] <= high, name
        assert params.optics.na < params.optics.ni
    assert len({p.photons for p in draws}) == len(draws)
    assert len({p.optics.depth_um for p in draws}) == len(draws)
    assert SimParams.random(np.random.default_rng(7)) == draws[7]
    photons = np.log([p.photons for p in draws])
    assert photons.min() < np.log(30) and photons.max() > np.log(150)  # log-uniform spans orders of magnitude


def test_practical_optics_use_objectives_as_labs_do() -> None:
    from voxelstudio.sim.params import IMMERSIONS, OpticsParams

    rng = np.random.default_rng(0)
    draws = [OpticsParams.practical(rng) for _ in range(400)]
    limits = {ni: (na_max, ns_max) for ni, _share, na_max, ns_max in IMMERSIONS}
    for optics in draws:  # every value valid (the constructor checks the ranges and na < ni) and per objective type
        na_max, ns_max = limits[optics.ni]
        assert optics.na <= na_max and optics.ns <= ns_max
    oil = [o for o in draws if o.ni == 1.515]
    assert 0.5 < len(oil) / len(draws) < 0.7  # the common case
    denser = np.mean([o.ns > o.ni for o in draws])  # uniform draws: about half; here only a little above water
    assert denser < 0.25 and np.mean([o.ns > o.ni for o in (OpticsParams.random(rng) for _ in range(400))]) > 0.4
    assert OpticsParams.practical(np.random.default_rng(3)) == OpticsParams.practical(np.random.default_rng(3))
