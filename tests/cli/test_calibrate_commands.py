"""``voxelstudio calibrate`` and ``simulate --params``: outputs, the report, and one-line errors that write nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.bead_microscope import TRUTH
from voxelstudio import cli
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.sim import SimParams, simulate_pair
from voxelstudio.tasks import calibrate as calibrate_module

FAST = ["--na", "1.1", "--wavelength", "0.52", "--quiet"]  # NA given: only the aberration is fitted


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The simulated scan; its calibration is computed once for the module (later calls reuse the first's)."""
    raw, _ = simulate_pair((112, 112, 32), TRUTH, seed=0)
    path = save_volume(Volume(raw, TRUTH.optics.voxel_size_um), tmp_path_factory.mktemp("scan") / "beads.tif")
    real = calibrate_module.calibrate_volumes
    cache: dict[str, Any] = {}

    def once(volumes: Any, **options: Any) -> Any:
        if str(volumes[0].source) != str(path):
            return real(volumes, **options)
        if "cal" not in cache:
            cache["cal"] = real(volumes, **options)
        return cache["cal"]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(calibrate_module, "calibrate_volumes", once)
        yield path


def _fails(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("voxelstudio: error:")


def test_calibrate_writes_params_and_bead_then_simulate_uses_them(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scope.json"
    assert cli.main(["calibrate", str(scan), "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "beads:" in text and "fit: converged" in text and "FWHM lateral/axial" in text
    assert "axial cross-check" in text
    record = json.loads(out.read_text())
    params = SimParams.from_dict(record["sim_params"])
    assert params.optics.na == 1.1 and params.photons == pytest.approx(300.0, rel=0.25)
    assert record["report"]["beads_used"] >= 5 and record["measured_psf"] is None
    bead = load_volume(tmp_path / "scope.psf.tif")
    assert bead.spacing == pytest.approx((0.1, 0.1, 0.2)) and bead.data.max() > 100

    sim_dir = tmp_path / "sim"
    argv = ["simulate", str(sim_dir), "--params", str(out), "--count", "2", "--shape", "24,24,8", "--jitter", "0.1"]
    assert cli.main([*argv, "--quiet"]) == 0
    pairs = json.loads((sim_dir / "params.json").read_text())["pairs"]
    drawn = [SimParams.from_dict(p["params"]) for p in pairs]
    assert drawn[0] != drawn[1]
    for p in drawn:
        assert p.photons == pytest.approx(params.photons, rel=0.11)
        assert p.optics.z_step_um == params.optics.z_step_um


def test_calibrate_json_report(scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["calibrate", str(scan), "--json", "--out", str(tmp_path / "p.json"), *FAST]) == 0
    report = json.loads(capsys.readouterr().out)  # only the object: "wrote ..." followed it
    assert report["written"] == [str(tmp_path / "p.json"), str(tmp_path / "p.psf.tif")]
    assert report["fit"]["converged"] and "na" not in report["fitted"]  # given, so not fitted
    assert {"ns", "depth_um", "photons", "read_noise", "gain"} <= set(report["fitted"])
    assert report["sim_params"]["optics"]["na"] == 1.1
    from voxelstudio.cli.calibrate_commands import format_report

    report["fitted"]["ns"]["sd"] = None  # what the JSON says of a value the beads do not determine (not Infinity)
    [line] = [line for line in format_report(report).splitlines() if line.split()[0] == "ns"]
    assert line.endswith(" (not determined by the beads)") and "±" not in line
    assert report["z_reversed"] is False and "stack order" not in format_report(report)
    report["z_reversed"] = True
    assert "stack order: reversed" in format_report(report)


def test_fit_that_does_not_converge_writes_nothing_unless_forced(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = calibrate_module.calibrate_volumes([load_volume(scan)], na=1.1, wavelength_um=0.52)
    failed = dataclasses.replace(cached, optics_fit=dataclasses.replace(cached.optics_fit, converged=False))
    monkeypatch.setattr(calibrate_module, "calibrate_volumes", lambda volumes, **options: failed)
    out = tmp_path / "p.json"
    expected = "not trustworthy: the optics fit left a residual"
    _fails(["calibrate", str(scan), "--out", str(out), *FAST], expected, capsys)
    assert list(tmp_path.iterdir()) == []
    assert cli.main(["calibrate", str(scan), "--out", str(out), "--force", *FAST]) == 0
    assert "NOT converged" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "p.psf.tif"]


def test_calibrate_with_a_measured_psf_records_it_for_the_simulator(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    psf = np.zeros((9, 9, 9), dtype=np.float32)
    psf[4, 4, 4] = 1.0
    psf_path = save_volume(Volume(psf, (0.1, 0.1, 0.2)), tmp_path / "psf.tif")
    out = tmp_path / "p.json"
    assert cli.main(["calibrate", str(scan), "--out", str(out), "--psf", str(psf_path), *FAST]) == 0
    assert json.loads(out.read_text())["measured_psf"] == str(psf_path.resolve())
    assert cli.main(["simulate", str(tmp_path / "sim"), "--params", str(out), "--count", "1", "--quiet"]) == 0
    assert json.loads((tmp_path / "sim" / "params.json").read_text())["measured_psf"] is True
    edge = np.zeros((9, 9, 9), dtype=np.float32)
    edge[4, 4, 0] = 1.0  # its brightest point on the stack's first plane
    save_volume(Volume(edge, (0.1, 0.1, 0.2)), psf_path, overwrite=True)
    argv = ["simulate", str(tmp_path / "sim2"), "--params", str(out), "--count", "1", "--quiet"]
    _fails(argv, f"{psf_path} (the measured PSF {out} names): the PSF's brightest point", capsys)
    wrong = save_volume(Volume(psf, (0.1, 0.1, 0.5)), tmp_path / "wrong.tif")
    _fails(["calibrate", str(scan), "--psf", str(wrong), *FAST], "differs from the scans'", capsys)
    bead = save_volume(Volume(psf, (0.1, 0.1, 0.2)), tmp_path / "cp.psf.tif")  # what --out cp.json writes beside it
    before = bead.read_bytes()
    argv = ["calibrate", str(scan), "--psf", str(bead), "--out", str(tmp_path / "cp.json"), "--overwrite", *FAST]
    _fails(argv, "is the measured PSF (--psf): the output would replace it", capsys)
    assert bead.read_bytes() == before and not (tmp_path / "cp.json").exists()


@pytest.mark.parametrize(
    ("make", "options", "message"),
    [
        ("flat_2d", [], "in.npy: a single plane (2-D image): calibration needs a z stack"),
        ("noise", [], "voxel size not in the file; give --voxel-size"),
        ("noise", ["--voxel-size", "0.1,0.1,0.2"], "in.npy: no beads found in the volume"),
        ("constant", ["--voxel-size", "0.1,0.1,0.2"], "in.npy: the volume is constant (0): no beads to fit"),
        ("saturated", [], "isolated beads are saturated"),
        ("two_beads", [], "usable beads (isolated, unsaturated, away from the borders) of"),
        ("noise", ["--voxel-size", "0.1,0.2,0.2"], "square pixels"),
        ("noise", ["--voxel-size", "0.1,0.1,0.5"], "--voxel-size: z step 0.5 µm is outside what the simulator models"),
        ("noise", ["--na", "high", "--voxel-size", "0.1,0.1,0.2"], "--na: expected a number, got 'high'"),
    ],
)
def test_bad_inputs_fail_in_one_line_and_write_nothing(
    make: str, options: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    spacing = (0.1, 0.1, 0.2)
    if make == "flat_2d":
        path = tmp_path / "in.npy"
        np.save(path, np.ones((20, 20), np.float32))
    elif make in ("noise", "constant"):
        path = tmp_path / "in.npy"
        np.save(path, rng.normal(100.0, 2.0, (64, 64, 32)).astype(np.float32) * (make == "noise"))
    else:
        density = 3e-6 if make == "two_beads" else 8e-5
        params = TRUTH.replace(bead_density=density, photons=2000.0)
        raw, _ = simulate_pair((112, 112, 32), params, seed=1 if make == "two_beads" else 0)
        if make == "saturated":
            raw = np.minimum(raw, np.percentile(raw, 99.9))
        path = save_volume(Volume(raw, spacing), tmp_path / "in.tif")
    before = sorted(tmp_path.iterdir())
    _fails(["calibrate", str(path), "--out", str(tmp_path / "p.json"), "--quiet", *options], message, capsys)
    assert sorted(tmp_path.iterdir()) == before


def test_adapt_budget_defaults_to_the_librarys(capsys: pytest.CaptureFixture[str]) -> None:
    from voxelstudio.cli.calibrate_commands import ADAPT_TRAINING_DEFAULTS
    from voxelstudio.tasks.adapt import DEFAULT_MINUTES

    assert cli.build_parser().parse_args(["adapt", "scan.mat", "--out", "m.keras"]).minutes is None  # not given
    assert float(ADAPT_TRAINING_DEFAULTS["minutes"]) == DEFAULT_MINUTES  # what it then means
    with pytest.raises(SystemExit):
        cli.main(["adapt", "--help"])
    assert f"[default {DEFAULT_MINUTES:g}]" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--pairs", "0"], "--pairs: expected a positive integer, got '0'"),
        (["--jitter", "1"], "--jitter: must be in [0, 1), got '1'"),
        (["--seed", "-1"], "--seed: expected a whole number >= 0, got '-1'"),
        (["--seed", "1.5"], "--seed: expected a whole number >= 0, got '1.5'"),
    ],
)
def test_adapt_refuses_bad_options_before_reading_the_scan(
    options: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-scan.mat"  # never read: the options are checked first
    _fails(["adapt", str(missing), "--out", str(tmp_path / "m.keras"), "--quiet", *options], message, capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_scan_given_twice_is_refused_before_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its beads would be pooled twice and every uncertainty come out too small."""
    scan = tmp_path / "scan.npy"
    np.save(scan, np.zeros((8, 8, 8), np.float32))
    for command in ("calibrate", "adapt"):
        out = tmp_path / ("p.json" if command == "calibrate" else "m.keras")
        again = str(tmp_path / "." / "scan.npy")  # the same file, written differently
        _fails([command, str(scan), again, "--out", str(out), "--quiet"], "scan.npy: given twice", capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.npy"]


def test_the_output_folder_is_checked_before_the_fit_and_made_when_missing(
    scan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "scope.json"
    assert cli.main(["calibrate", str(scan), "--out", str(out), *FAST]) == 0
    assert out.exists() and (tmp_path / "new" / "scope.psf.tif").exists()
    capsys.readouterr()

    def no_fit(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the fit ran although the output cannot be written")

    monkeypatch.setattr(calibrate_module, "calibrate_volumes", no_fit)
    (tmp_path / "file").write_text("not a folder")
    _fails(["calibrate", str(scan), "--out", str(tmp_path / "file" / "p.json"), *FAST], "file: is a file", capsys)


def test_a_dark_stack_gives_the_camera_its_offset_and_read_noise(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / "beads.tif"  # another path: the module's cached calibration is without a dark stack
    own.write_bytes(scan.read_bytes())
    rng = np.random.default_rng(3)
    dark = tmp_path / "dark.npy"
    np.save(dark, (TRUTH.offset + TRUTH.read_noise * rng.standard_normal((64, 64, 8))).astype(np.float32))
    assert cli.main(["calibrate", str(own), "--dark", str(dark), "--json", *FAST]) == 0
    report = json.loads(capsys.readouterr().out)
    fitted = {name: entry["value"] for name, entry in report["fitted"].items()}  # in photo-electrons
    assert fitted["read_noise"] * fitted["gain"] == pytest.approx(TRUTH.read_noise, abs=0.1)  # counts, as the dark's
    assert fitted["offset"] * fitted["gain"] == pytest.approx(TRUTH.offset, abs=0.1)
    assert any("(dark stack)" in line for line in report["assumed"])


@pytest.mark.parametrize(
    ("dark_data", "message"),
    [
        (np.full((64, 64, 8), 5000.0), "dark.npy: its mean, 5000 counts, is above the scans' darkest voxels"),
        (np.zeros((4, 4, 2)), "dark.npy: a dark stack needs at least 8x8 pixels"),
        (None, "dark.npy: file not found"),
    ],
    ids=["bright", "small", "missing"],
)
def test_a_dark_stack_that_cannot_be_one_fails_in_one_line(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], dark_data: np.ndarray | None, message: str
) -> None:
    own = tmp_path / "beads.tif"
    own.write_bytes(scan.read_bytes())
    dark = tmp_path / "dark.npy"
    if dark_data is not None:
        np.save(dark, dark_data.astype(np.float32))
    _fails(["calibrate", str(own), "--dark", str(dark), "--out", str(tmp_path / "p.json"), *FAST], message, capsys)
    _fails(["adapt", str(own), "--dark", str(dark), "--out", str(tmp_path / "m.keras"), *FAST], message, capsys)
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "m.keras").exists()


def test_adapt_correct_only_stores_its_measurement_in_a_copy_of_the_starting_model(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voxelstudio.ml.persistence import load_model, save_model
    from voxelstudio.tasks.denoise import default_model_path

    bundled = load_model(default_model_path())
    start = tmp_path / "trained.keras"  # a model whose training measured its own shift: the new one replaces it
    stale = {"bead_offset": {"input_shift_vox": [0, 0, -0.9]}, "kept": 1}
    save_model(bundled.model, start, train_config=bundled.train_config, normalizer=bundled.normalizer, extra=stale,
               input_shift=(0.0, 0.0, -0.9))  # fmt: skip
    out = tmp_path / "corrected.keras"
    assert cli.main(["adapt", str(scan), "--correct-only", "--init", str(start), "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert f"{out}: the starting model, as it is, with the calibration (not fine-tuned)" in text  # nothing to move
    assert "Bead positions: within 0.25 voxel of the truth" in text
    corrected = load_model(out)
    for mine, theirs in zip(corrected.model.get_weights(), bundled.model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)  # not trained: the network as it is
    assert corrected.train_config == bundled.train_config
    extra = corrected.metadata["extra"]
    assert extra["kept"] == 1 and "bead_offset" not in extra  # the superseded measurement is gone
    offset = extra["adaptation"]["bead_offset"]
    assert offset["source"] == "simulated" and offset["beads"] >= 20
    assert list(corrected.input_shift) == offset["input_shift_vox"] and corrected.input_shift[2] != -0.9
    assert offset["measured_vox"][2] > -0.5  # the network alone: moved by the old -0.9 first, beads would end short
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrected.keras", "trained.keras"]  # no checkpoint


def test_adapt_correct_only_refuses_the_fine_tuning_options_it_would_ignore(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "corrected.keras"
    base = ["adapt", str(scan), "--correct-only", "--out", str(out), *FAST]
    _fails([*base, "--minutes", "3"], "--correct-only trains nothing, so --minutes would be ignored", capsys)
    _fails([*base, "--pairs", "4", "--jitter", "0.2"], "so --pairs and --jitter would be ignored", capsys)
    assert not out.exists()
