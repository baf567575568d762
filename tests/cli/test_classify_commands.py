"""``voxelstudio simulate-shapes``, ``train-classifier``, ``evaluate-classifier`` and ``classify``: exit codes,
outputs and JSON keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import pytest

from voxelstudio import cli


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "shapes"
    assert cli.main(["simulate-shapes", str(folder), "--per-class", "6", "--size", "16", "--seed", "2", "--quiet"]) == 0
    return folder


@pytest.fixture(scope="module")
def model(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m.keras"
    argv = ["train-classifier", str(shapes), "--size", "16", "--width", "0.25", "--epochs", "1", "--out", str(out),
            "--test-fraction", "0.15"]  # fmt: skip
    assert cli.main([*argv, "--quiet"]) == 0
    return out


def test_simulate_shapes_writes_ten_class_folders(shapes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sorted(p.name for p in shapes.iterdir())[:3] == ["capsule", "cone", "cross"]
    assert len(list(shapes.glob("*/*.npy"))) == 60
    assert np.load(shapes / "cube" / "cube_0005.npy").shape == (16, 16, 16)
    assert cli.main(["simulate-shapes", str(shapes), "--per-class", "6", "--size", "16", "--quiet"]) == 2
    assert "already holds a shapes data set; pass --overwrite" in capsys.readouterr().err


def test_train_output_and_resume(shapes: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert model.exists() and model.with_name("m.last.keras").exists()
    argv = ["train-classifier", str(shapes), "--size", "16", "--width", "0.25", "--epochs", "2", "--out", str(model),
            "--test-fraction", "0.15"]  # fmt: skip
    assert cli.main([*argv, "--resume", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "data: 10 classes, 60 grids (train 40, validation 10, test 10)" in out
    assert "validation accuracy" in out and "test accuracy" in out and "2 epochs" in out


def test_evaluate_json_keys(shapes: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate-classifier", str(shapes), "--model", str(model), "--rotations", "4", "--json"]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"accuracy", "per_class", "confusion", "classes"}
    assert len(report["classes"]) == 10 and np.array(report["confusion"]).sum() == 60
    assert cli.main(["evaluate-classifier", str(shapes), "--model", str(model), "--rotations", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("accuracy ") and "confusion" in text and "torus" in text


def test_classify_prints_top_classes(shapes: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(shapes / "cube" / "cube_0000.npy"), str(shapes / "tube" / "tube_0001.npy")]
    assert cli.main(["classify", *files, "--model", str(model), "--top", "2", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in records] == files and all(len(r["top"]) == 2 for r in records)
    assert set(records[0]["top"][0]) == {"class", "probability"} and len(records[0]["probabilities"]) == 10
    assert cli.main(["classify", files[0], "--model", str(model)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{files[0]}: ") and line.count(",") == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classify", "{tmp}/missing.npy", "--model", "{model}"], "missing.npy: file not found"),
        (
            ["classify", "{shapes}/cube/cube_0000.npy", "--model", "{tmp}/none.keras"],
            "none.keras: model file not found",
        ),
        (["evaluate-classifier", "{tmp}", "--model", "{model}"], "no class sub-folders"),
        (["train-classifier", "{shapes}", "--search", "2", "--resume", "--out", "{tmp}/x.keras"], "cannot be combined"),
        (["train-classifier", "{shapes}", "--width", "0", "--out", "{tmp}/x.keras"], "--width: must be positive"),
        (["train-classifier", "{tmp}/nowhere", "--out", "{tmp}/x.keras"], "nowhere: no such folder"),
        (["train-classifier", "{shapes}", "--val-fraction", "0", "--out", "{tmp}/x.keras"], "must be in (0, 1), got 0"),
        (["train-classifier", "{shapes}", "--test-fraction", "1", "--out", "{tmp}/x.keras"], "in [0, 1), got 1"),
        (["simulate-shapes", "{tmp}/s", "--per-class", "0"], "--per-class: must be at least 1"),
        (["simulate-shapes", "{tmp}/s", "--size", "100000"], "--size: must be 8 to 128 (the largest grid"),
    ],
)
def test_errors_exit_2_with_one_line(
    argv: list[str], message: str, shapes: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = [a.format(tmp=tmp_path, model=model, shapes=shapes) for a in argv]
    assert cli.main([*filled, "--quiet"] if filled[0] != "classify" else filled) == 2
    err = capsys.readouterr().err
    assert err.startswith("voxelstudio: error: ") and err.count("\n") == 1 and message in err


def test_classify_with_the_bundled_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voxelstudio.core.resources import resource_path

    sample = resource_path("shapes", "torus", "torus_0000.mat")
    noise = tmp_path / "noise.npy"
    np.save(noise, np.random.default_rng(0).random((32, 32, 32)).astype(np.float32))
    assert cli.main(["classify", str(sample), str(noise), "--json", "--rotations", "1"]) == 0
    record, unlike = json.loads(capsys.readouterr().out)
    assert record["top"][0]["class"] == "torus" and record["in_domain"] and record["out_of_domain"] is None
    assert not unlike["in_domain"] and "topology" in unlike["out_of_domain"]
    assert cli.main(["classify", str(noise), "--rotations", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{noise}: unlike the classes this model knows (its topology is unlike")


def test_the_choices_the_cli_lists_without_importing_ml_are_the_libraries() -> None:
    from voxelstudio.cli import classify_commands
    from voxelstudio.ml.classifier_config import CLASSIFIER_ARCHITECTURES, ORIENTATIONS
    from voxelstudio.ml.classifier_presets import PRESET_CHOICES

    assert classify_commands.ARCHS == CLASSIFIER_ARCHITECTURES
    assert classify_commands.ORIENTATIONS == ORIENTATIONS
    assert classify_commands.PRESET_CHOICES == PRESET_CHOICES


def test_train_refuses_an_existing_out_and_a_huge_grid_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "kept.keras"
    existing.write_bytes(b"a model the user keeps")
    missing_data = tmp_path / "no-such-folder"  # never read: the checks come first
    assert cli.main(["train-classifier", str(missing_data), "--out", str(existing), "--epochs", "1", "--quiet"]) == 2
    assert f"{existing}: already exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert existing.read_bytes() == b"a model the user keeps"
    assert cli.main(["train-classifier", str(missing_data), "--size", "1000", "--out", str(tmp_path / "m.keras")]) == 2
    assert "--size: must be 8 to 128, got 1000" in capsys.readouterr().err
    args = [
        "train-classifier",
        str(missing_data),
        "--size",
        "10",
        "--preset",
        "cpu",
        "--out",
        str(tmp_path / "m.keras"),
    ]
    assert cli.main([*args, "--arch", "voxnet"]) == 2  # refused before the data set is read
    assert "VoxNet needs inputs of at least 11^3" in capsys.readouterr().err
    assert cli.main(["train-classifier", str(missing_data), "--seed", "-1", "--out", str(tmp_path / "m.keras")]) == 2
    assert "seed must be a whole number >= 0, got -1" in capsys.readouterr().err


def test_a_test_set_of_one_class_can_be_evaluated(
    shapes: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    shutil.copytree(shapes / "cone", tmp_path / "cones" / "cone")
    argv = ["evaluate-classifier", str(tmp_path / "cones"), "--model", str(model), "--rotations", "1", "--json"]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["per_class"]) == {"cone"}
