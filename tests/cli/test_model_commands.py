"""``voxelstudio export-model MODEL.keras --bioimageio OUT.zip``: output, and one line with exit 2 on bad input."""

from __future__ import annotations

import importlib.util
import zipfile

import numpy as np
import pytest

from voxelstudio.cli import main
from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume

TINY = {"model": {"arch": "simple", "filters": 2, "kernel": [3, 3, 3], "n_layers": 2}, "patch_shape": [16, 16, 8]}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from voxelstudio.core.normalize import PercentileNormalizer
    from voxelstudio.ml.config import TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.persistence import save_model

    config = TrainConfig.from_dict(TINY)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_model(build_denoiser(config.model), path, train_config=config, normalizer=PercentileNormalizer())
    return path


@pytest.fixture
def small_sample(tmp_path):
    path = tmp_path / "raw.npy"
    save_volume(Volume(np.random.default_rng(0).random((20, 18, 6)).astype(np.float32)), path)
    return path


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_export_writes_the_package_and_says_what_it_holds(tiny_model, small_sample, tmp_path, capsys):
    out = tmp_path / "tiny.zip"
    code = main(["export-model", str(tiny_model), "--bioimageio", str(out), "--sample", str(small_sample),
                 "--voxel-size", "0.1,0.1,0.3", "--authors", "Ada Lovelace, Alan Turing", "--no-validate",
                 "--quiet"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{out}: weights tensorflow_saved_model_bundle" in printed and "not checked (--no-validate)" in printed
    if all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnx", "onnxruntime")):
        assert "tensorflow_saved_model_bundle, onnx;" in printed  # mirrored padding converts faithfully
    with zipfile.ZipFile(out) as archive:
        rdf = archive.read("rdf.yaml").decode()
    assert "name: Ada Lovelace" in rdf and "name: Alan Turing" in rdf and "scale: 0.3" in rdf
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left


def test_a_file_that_is_not_a_model_is_one_line_and_exit_2(tmp_path, capsys):
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    assert main(["export-model", str(fake), "--bioimageio", str(tmp_path / "out.zip"), "--quiet"]) == 2
    line = error_line(capsys)
    assert line.startswith(f"voxelstudio: error: {fake}:") and "model" in line
    assert not (tmp_path / "out.zip").exists()


def test_a_missing_model_is_one_line_and_exit_2(tmp_path, capsys):
    args = ["export-model", str(tmp_path / "none.keras"), "--bioimageio", str(tmp_path / "out.zip"), "--quiet"]
    assert main(args) == 2
    assert "none.keras: model file not found" in error_line(capsys)


def test_an_output_that_is_not_a_zip_is_one_line_and_exit_2(tiny_model, tmp_path, capsys):
    out = tmp_path / "package.tar"
    assert main(["export-model", str(tiny_model), "--bioimageio", str(out), "--quiet"]) == 2
    assert f"{out}: a BioImage Model Zoo package must end in .zip" in error_line(capsys)
    assert not out.exists()


def test_an_existing_output_needs_overwrite(tiny_model, small_sample, tmp_path, capsys):
    out = tmp_path / "taken.zip"
    out.write_bytes(b"keep me")
    assert (
        main(["export-model", str(tiny_model), "--bioimageio", str(out), "--sample", str(small_sample), "--quiet"]) == 2
    )
    assert f"{out}: already exists; pass --overwrite" in error_line(capsys)
    assert out.read_bytes() == b"keep me"


def test_a_sample_smaller_than_the_model_step_leaves_nothing_behind(tmp_path, capsys):
    from voxelstudio.core.normalize import PercentileNormalizer
    from voxelstudio.ml.config import TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.persistence import save_model

    config = TrainConfig.from_dict({"model": {"arch": "unet", "filters": 2, "depth": 3, "kernel": [3, 3, 3]}})
    model = save_model(build_denoiser(config.model), tmp_path / "deep.keras", train_config=config,
                       normalizer=PercentileNormalizer())  # fmt: skip
    flat = tmp_path / "flat.npy"
    save_volume(Volume(np.ones((32, 32, 2), np.float32)), flat)
    out = tmp_path / "deep.zip"
    argv = ["export-model", str(model), "--bioimageio", str(out), "--sample", str(flat), "--voxel-size", "0.1,0.1,0.2"]
    assert main([*argv, "--quiet"]) == 2
    assert f"{flat}: shape (32, 32, 2) is smaller than the model's size step (4, 4, 4)" in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.keras", "flat.npy"]


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [("--voxel-size", "0.1,0.1", "--voxel-size: expected three positive numbers"),
     ("--voxel-size", "0.1,-1,0.2", "--voxel-size: expected three positive numbers"),
     ("--name", "a/b", "--name: 5 to 128 letters"),
     ("--license", "NOT A LICENSE", "--license: 'NOT A LICENSE' is not an SPDX licence id")],
)  # fmt: skip
def test_bad_options_are_one_line_and_exit_2(tiny_model, tmp_path, capsys, option, value, problem):
    args = ["export-model", str(tiny_model), "--bioimageio", str(tmp_path / "o.zip"), option, value, "--quiet"]
    assert main(args) == 2
    assert problem in error_line(capsys)
