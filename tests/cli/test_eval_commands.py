"""``voxelstudio evaluate`` and ``voxelstudio deconvolve`` end to end on small files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from voxelstudio import cli
from voxelstudio.cli.eval_commands import _json_ready
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume

SHAPE = (32, 32, 20)
BEADS = [(8, 8, 10), (8, 24, 9), (24, 8, 11), (22, 22, 10)]
PSF_SIGMA = (1.2, 1.2, 3.3)
RAW_SIGMA = tuple(float(np.hypot(1.0, s)) for s in PSF_SIGMA)  # beads of sigma 1 seen through the PSF


def _beads(sigma: tuple[float, float, float]) -> np.ndarray:
    grid = np.indices(SHAPE, dtype=np.float64)
    return sum(np.exp(-sum((grid[i] - c[i]) ** 2 / (2 * sigma[i] ** 2) for i in range(3))) for c in BEADS)  # type: ignore[return-value]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    volumes = {
        "target": _beads((1.2, 1.2, 1.2)),
        "pred": 3 * _beads((1.2, 1.2, 1.2)) + rng.normal(0, 0.02, SHAPE),
        "raw": 100 * _beads(RAW_SIGMA) + 100 + rng.normal(0, 1, SHAPE),
    }
    paths = {name: tmp_path / f"{name}.npy" for name in volumes}
    for name, data in volumes.items():
        save_volume(Volume(data.astype(np.float32)), paths[name])
    kernel = _beads(PSF_SIGMA)[2:15, 2:15, 1:20]  # the first bead, cropped and centred
    save_volume(Volume(kernel / kernel.sum()), tmp_path / "psf.npy")
    paths["psf"] = tmp_path / "psf.npy"
    return paths


def test_evaluate_prints_a_table(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", "--pred", str(files["pred"]), "--target", str(files["target"]), "--raw", str(files["raw"])]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split() == ["pred", "raw"])
    assert header
    ratio_row = next(line for line in out.splitlines() if line.startswith("FWHM axial/lateral"))
    pred_ratio, raw_ratio = (float(v) for v in ratio_row.split()[-2:])
    assert pred_ratio == pytest.approx(1.0, abs=0.05) and raw_ratio == pytest.approx(
        RAW_SIGMA[2] / RAW_SIGMA[0], rel=0.05
    )
    assert "FWHM in voxels" in out and "target: 4 beads" in out


def test_evaluate_json_is_one_object(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["evaluate", "--pred", str(files["pred"]), "--target", str(files["target"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"names", "spacing", "units", "pred", "files"}
    assert result["pred"]["f1"] == 1.0 and result["pred"]["psnr"] > 30
    cleaned = _json_ready({"psnr": math.inf, "rows": [math.nan, 1.5], "n": 3})
    assert cleaned == {"psnr": None, "rows": [None, 1.5], "n": 3}


def test_evaluate_shape_mismatch_is_one_line(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = save_volume(Volume(np.zeros((8, 8, 8), np.float32)), tmp_path / "small.npy")
    assert cli.main(["evaluate", "--pred", str(small), "--target", str(files["target"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "small.npy" in err and "target.npy" in err


def test_deconvolve_with_a_psf_file_writes_beside_the_input(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["deconvolve", str(files["raw"]), "--psf", str(files["psf"]), "--iterations", "15"]) == 0
    out_path = files["raw"].parent / "deconvolved" / "raw.npy"
    assert capsys.readouterr().out.strip() == str(out_path)
    result = load_volume(out_path)
    assert result.shape == SHAPE
    from voxelstudio.metrics import bead_fwhm

    assert bead_fwhm(result.data)["ratio"] < 0.9 * bead_fwhm(load_volume(files["raw"]).data)["ratio"]
    # a second run refuses to replace the output unless asked
    assert cli.main(["deconvolve", str(files["raw"]), "--psf", str(files["psf"]), "--iterations", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
    argv = ["deconvolve", str(files["raw"]), "--psf", str(files["psf"]), "--iterations", "1", "--overwrite"]
    assert cli.main(argv) == 0


def test_deconvolve_with_simulated_optics_keeps_the_voxel_size(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["deconvolve", str(files["raw"]), "--na", "1.3", "--ni", "1.515", "--voxel-size", "0.1,0.1,0.25"]
    argv += ["--iterations", "2", "--out-dir", str(tmp_path / "out"), "--format", "mat", "--quiet"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().err == ""  # --quiet: no progress bar
    result = load_volume(tmp_path / "out" / "raw.mat")
    assert result.spacing == pytest.approx((0.1, 0.1, 0.25))
    assert np.isfinite(result.data).all()


def test_deconvolve_takes_1_um_voxels_when_given(files: dict[str, Path], tmp_path: Path) -> None:
    """1 µm isotropic voxels (a light sheet) read as 'not in the file; give --voxel-size' though it was given."""
    argv = ["deconvolve", str(files["raw"]), "--na", "0.8", "--ni", "1.33", "--voxel-size", "1,1,1"]
    assert cli.main([*argv, "--iterations", "1", "--out-dir", str(tmp_path / "out"), "--quiet"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--na", "1.3"], "either --psf or the optics options"),
        (["--out-dir", "."], "would replace the input"),
        (["--iterations", "0"], "at least 1"),
        (["--out-dir", "pred.npy"], "pred.npy: is a file, not a folder"),
    ],
)
def test_deconvolve_refusals(
    files: dict[str, Path], extra: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.chdir(files["raw"].parent)
    assert cli.main(["deconvolve", str(files["raw"]), "--psf", str(files["psf"]), *extra]) == 2
    assert message in capsys.readouterr().err


def test_deconvolve_bad_voxel_size_is_a_usage_error(files: dict[str, Path]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["deconvolve", str(files["raw"]), "--voxel-size", "0.1,0.1"])
    assert exc.value.code == 2
