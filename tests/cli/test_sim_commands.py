"""``voxelstudio simulate``: writes the dataset, honours the physics options and rejects bad values in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voxelstudio import cli
from voxelstudio.sim import SimParams


def test_simulate_writes_pairs_with_the_given_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    argv = ["simulate", str(out), "--count", "2", "--seed", "3", "--shape", "20,16,8", "--quiet"]
    argv += ["--na", "1.2", "--ns", "1.45", "--voxel-size", "0.12,0.12,0.25", "--photons", "500", "--haze", "0"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in (out / "raw").iterdir()) == ["001.mat", "002.mat"]
    assert sorted(p.name for p in (out / "target").iterdir()) == ["001.mat", "002.mat"]
    record = json.loads((out / "params.json").read_text())
    params = SimParams.from_dict(record["pairs"][0]["params"])
    assert (params.optics.na, params.optics.ns, params.photons, params.haze) == (1.2, 1.45, 500.0, 0.0)
    assert params.optics.voxel_size_um == (0.12, 0.12, 0.25)
    assert params.background == SimParams().background
    assert record["shape"] == [20, 16, 8] and record["seed"] == 3
    assert "wrote 2 pairs" in capsys.readouterr().out


def test_simulate_out_of_stack_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    base = ["simulate", "--count", "1", "--shape", "16,16,8", "--quiet"]
    assert cli.main([base[0], str(tmp_path / "on"), *base[1:]]) == 0
    assert cli.main([base[0], str(tmp_path / "off"), *base[1:], "--out-of-stack", "0"]) == 0
    on, off = (json.loads((tmp_path / n / "params.json").read_text())["pairs"][0]["params"] for n in ("on", "off"))
    assert on["out_of_stack"] == SimParams().out_of_stack > 0
    assert off["out_of_stack"] == 0.0
    assert cli.main([base[0], str(tmp_path / "bad"), *base[1:], "--out-of-stack", "9"]) == 2


def test_simulate_randomize(tmp_path: Path) -> None:
    assert cli.main(["simulate", str(tmp_path), "--count", "2", "--shape", "16x16x8", "--randomize", "--quiet"]) == 0
    record = json.loads((tmp_path / "params.json").read_text())
    drawn = [SimParams.from_dict(pair["params"]) for pair in record["pairs"]]
    assert record["randomize"] is True and drawn[0] != drawn[1] and SimParams() not in drawn


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--na", "abc"], "--na: expected a number, got 'abc'"),
        (["--na", "1.45", "--ni", "1.33"], "--na: na (1.45) must be below the immersion index ni (1.33)"),
        (["--photons", "0"], "--photons: photons must be in [10, 5000], got 0"),
        (["--wavelength", "0.9"], "--wavelength: wavelength_um must be in [0.4, 0.7], got 0.9"),
        (["--voxel-size", "0.1,0.2,0.1"], "--voxel-size: Y and X must be equal"),
        (["--voxel-size=nan,nan,0.1"], "--voxel-size: expected three positive numbers (µm), got 'nan,nan,0.1'"),
        (["--voxel-size=-1,1,1"], "--voxel-size: expected three positive numbers (µm), got '-1,1,1'"),
        (["--voxel-size", "0.1,0.1"], "--voxel-size: expected 3 comma-separated values"),
        (["--voxel-size", "1,1,1"], "--voxel-size: pixel_um must be in"),
        (["--shape", "16,16"], "--shape: expected 3 comma-separated values"),
        (["--shape", "16,0,8"], "--shape: sizes must be positive"),
        (["--count", "two"], "--count: expected an integer, got 'two'"),
        (["--count", "0"], "--count: must be at least 1"),
        (["--randomize", "--haze", "0.1"], "--randomize draws every parameter; drop --haze"),
    ],
)
def test_bad_option_values_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert cli.main(["simulate", str(out), "--quiet", *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("voxelstudio: error: ")
    assert message in err
    assert not out.exists()


def test_unreadable_params_and_a_file_as_outdir_are_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "params.json"
    binary.write_bytes(bytes(range(128, 256)))
    assert cli.main(["simulate", str(tmp_path / "out"), "--params", str(binary), "--quiet"]) == 2
    assert capsys.readouterr().err == f"voxelstudio: error: {binary}: not a JSON file (binary content)\n"
    assert cli.main(["simulate", str(binary), "--count", "1", "--shape", "16,16,8", "--quiet"]) == 2
    assert capsys.readouterr().err == f"voxelstudio: error: {binary}: is a file, not a folder\n"


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"format": "voxelstudio-calibration", "sim_params": [1, 2]}, "sim_params must be a JSON object"),
        ({"format": "voxelstudio-calibration", "sim_params": {}, "measured_psf": 5}, "measured_psf must be the path"),
        ({"optics": [1.2]}, "optics must be a mapping of optics parameters"),  # a nested field of the wrong type
        ({"generator": "voxelstudio.sim.simulate_pair", "pairs": []}, "the record of a simulated data set"),
    ],
)
def test_a_params_file_of_the_wrong_shape_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: dict, problem: str
) -> None:
    path = tmp_path / "params.json"
    path.write_text(json.dumps(record))
    assert cli.main(["simulate", str(tmp_path / "out"), "--params", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"voxelstudio: error: {path}: {problem}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_params_file_is_not_where_simulate_writes_its_record(tmp_path: Path, capsys) -> None:
    """calibrate --out data/params.json, then simulate data --params data/params.json replaced the calibration."""
    (tmp_path / "data").mkdir()
    calibration = tmp_path / "data" / "params.json"
    calibration.write_text(json.dumps(SimParams().to_dict()))
    before = calibration.read_text()
    assert cli.main(["simulate", str(tmp_path / "data"), "--params", str(calibration), "--quiet"]) == 2
    assert "is where simulate writes its own record" in capsys.readouterr().err and calibration.read_text() == before
