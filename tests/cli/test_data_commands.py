"""``voxelstudio info`` and ``voxelstudio convert``."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile

from voxelstudio import cli
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume


@pytest.fixture
def scan() -> np.ndarray:
    return np.arange(5 * 7 * 3, dtype=np.float64).reshape(5, 7, 3) / 4 - 2


def _stderr_line(err: str) -> str:
    assert err.count("\n") == 1, err
    assert err.startswith("voxelstudio: error: ")
    return err


def test_info_prints_every_variable_the_chosen_volume_and_spacing(tmp_path, scan, capsys) -> None:
    path = tmp_path / "scan.mat"
    scipy.io.savemat(
        path,
        {
            "voxel": scan,
            "voxel_size_um": np.array([[0.1, 0.2, 0.3]]),
            "counts": np.array([[3, 9]], dtype=np.uint16),
            "note": "beads",
        },
    )

    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"file:    {path}"
    assert lines[1] == "format:  mat-v5"
    assert lines[2].split() == ["name", "shape", "dtype", "min", "max", "note"]
    assert lines[3].split() == ["voxel", "5x7x3", "float64", "-2", "24", "<-", "volume"]
    assert lines[4].split()[:5] == ["voxel_size_um", "1x3", "float64", "0.1", "0.3"]
    assert lines[5].split() == ["counts", "1x2", "uint16", "3", "9"]
    assert lines[6].split()[:5] == ["note", "1", "char", "-", "-"]
    assert "volume:  voxel (5x7x3, loaded as float32)" in out
    assert "spacing: y=0.1 x=0.2 z=0.3 um" in out


def test_info_on_an_ambiguous_file_lists_candidates_and_exits_2(tmp_path, scan, capsys) -> None:
    np.savez(tmp_path / "two.npz", raw=scan, target=scan * 2)

    assert cli.main(["info", str(tmp_path / "two.npz")]) == 2
    captured = capsys.readouterr()
    assert "raw     5x7x3  float64  -2" in captured.out
    assert "target  5x7x3  float64  -4" in captured.out
    assert "several arrays could be the volume" in _stderr_line(captured.err)

    assert cli.main(["info", str(tmp_path / "two.npz"), "--variable", "target"]) == 0
    assert "volume:  target (5x7x3" in capsys.readouterr().out


def test_info_reports_why_the_volume_is_unusable(tmp_path, scan, capsys) -> None:
    scan[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", scan)

    assert cli.main(["info", str(tmp_path / "nan.npy")]) == 2
    captured = capsys.readouterr()
    assert "has NaN/Inf" in captured.out
    assert "nan.npy: variable 'array' contains NaN or Inf values" in _stderr_line(captured.err)


@pytest.mark.parametrize("chain", [["mat", "tif", "npz", "mat"], ["npz", "tiff", "mat"]])
def test_convert_chains_keep_values_and_spacing(tmp_path, scan, capsys, chain) -> None:
    source = save_volume(Volume(scan, spacing=(0.2, 0.1, 0.5)), tmp_path / f"step0.{chain[0]}")
    current = source
    for index, suffix in enumerate(chain[1:], start=1):
        target = tmp_path / f"step{index}.{suffix}"
        assert cli.main(["convert", str(current), str(target)]) == 0
        assert f"wrote {target} (5x7x3 float32, y=0.2 x=0.1 z=0.5 um)" in capsys.readouterr().out
        current = target

    final = load_volume(current)
    np.testing.assert_array_equal(final.data, scan.astype(np.float32))
    assert final.spacing == pytest.approx((0.2, 0.1, 0.5))


def test_convert_options_variable_names_and_mat_version(tmp_path, scan) -> None:
    np.savez(tmp_path / "pair.npz", raw=scan, target=scan * 2)
    out = tmp_path / "target.mat"

    assert cli.main(["convert", str(tmp_path / "pair.npz"), str(out), "--variable", "target"]) == 0
    assert scipy.io.whosmat(out)[0][0] == "target"
    np.testing.assert_array_equal(load_volume(out).data, (scan * 2).astype(np.float32))

    args = ["convert", str(tmp_path / "pair.npz"), str(out), "--variable", "raw", "--out-variable", "voxel"]
    assert cli.main([*args, "--mat-version", "7.3", "--overwrite"]) == 0
    assert h5py.is_hdf5(out)
    with h5py.File(out, "r") as file:
        assert "voxel" in file
    np.testing.assert_array_equal(load_volume(out).data, scan.astype(np.float32))


def test_convert_refuses_to_overwrite_without_the_flag(tmp_path, scan, capsys) -> None:
    source = save_volume(Volume(scan), tmp_path / "in.npy")
    existing = tmp_path / "out.tif"
    tifffile.imwrite(existing, np.zeros((2, 3, 4), np.float32), photometric="minisblack")
    before = existing.read_bytes()

    assert cli.main(["convert", str(source), str(existing)]) == 2
    assert "out.tif: already exists" in _stderr_line(capsys.readouterr().err)
    assert existing.read_bytes() == before


def test_convert_never_writes_over_its_input(tmp_path, scan, capsys) -> None:
    """--variable a --overwrite onto the file itself removed its other variables."""
    import scipy.io

    both = tmp_path / "both.mat"
    scipy.io.savemat(both, {"a": scan, "b": scan})
    before = both.read_bytes()
    assert cli.main(["convert", str(both), str(both), "--variable", "a", "--overwrite"]) == 2
    assert "both.mat: is the input file: the output would replace it" in _stderr_line(capsys.readouterr().err)
    assert both.read_bytes() == before


def test_convert_with_mat_version_to_a_tiff_is_an_error(tmp_path, scan, capsys) -> None:
    source = save_volume(Volume(scan), tmp_path / "in.npy")

    assert cli.main(["convert", str(source), str(tmp_path / "o.tif"), "--mat-version", "7.3"]) == 2
    assert "applies to .mat files only" in _stderr_line(capsys.readouterr().err)
    assert not (tmp_path / "o.tif").exists()


def test_commands_have_help(capsys) -> None:
    for command in ("info", "convert"):
        with pytest.raises(SystemExit) as exc:
            cli.main([command, "--help"])
        assert exc.value.code == 0
    assert "--mat-version {5,7.3}" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["mat", "v4", "tif"])
def test_corrupt_file_in_a_real_process_gives_one_stderr_line_and_exit_2(tmp_path, scan, kind) -> None:
    if kind == "mat":
        path = tmp_path / "corrupt.mat"
        path.write_bytes(b"MATLAB 5.0 MAT-file".ljust(124) + b"\x00\x01IM" + bytes(range(256)) * 3)
    elif kind == "v4":  # a v4 header claiming Cray numbers makes scipy warn, which must not reach stderr
        path = tmp_path / "cray.mat"
        scipy.io.savemat(path, {"voxel": np.ones((4, 1))}, format="4")  # a vector: not a volume
        path.write_bytes((4000).to_bytes(4, "little") + path.read_bytes()[4:])
    else:  # a truncated ImageJ stack makes tifffile log warnings, which must not reach stderr
        whole = save_volume(Volume(scan), tmp_path / "whole.tif")
        path = tmp_path / "corrupt.tif"
        path.write_bytes(whole.read_bytes()[:500])

    result = subprocess.run(
        [sys.executable, "-m", "voxelstudio", "info", str(path)], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"voxelstudio: error: {path}: ")


def test_info_and_convert_say_when_the_voxel_size_is_unknown_or_lost(tmp_path, scan, capsys) -> None:
    np.save(tmp_path / "plain.npy", scan)
    assert cli.main(["info", str(tmp_path / "plain.npy")]) == 0
    assert "spacing: unknown (none in the file, or 1 x 1 x 1, which is read as none)" in capsys.readouterr().out
    source = save_volume(Volume(scan, spacing=(0.2, 0.1, 0.5)), tmp_path / "scan.mat")
    assert cli.main(["convert", str(source), str(tmp_path / "scan.npy")]) == 0
    captured = capsys.readouterr()
    assert "(5x7x3 float32, voxel size not stored)" in captured.out
    assert "scan.npy: .npy cannot store the voxel size" in captured.err


def test_a_warning_about_a_file_is_printed_once_though_the_file_is_read_twice(tmp_path, scan) -> None:
    path = tmp_path / "furlongs.tif"
    stack = np.moveaxis(scan, 2, 0).astype(np.float32)
    tifffile.imwrite(path, stack, imagej=True, metadata={"unit": "furlong", "axes": "ZYX"})

    # info lists the file, then loads it: two reads of its voxel size
    result = subprocess.run(
        [sys.executable, "-m", "voxelstudio", "info", str(path)], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert (
        result.stderr
        == f"voxelstudio: warning: {path}: unknown ImageJ length unit 'furlong'; the voxel size is unknown\n"
    )
