"""``voxelstudio train-denoiser`` and ``voxelstudio denoise``: options, outputs and exit codes."""

from __future__ import annotations

import argparse
import dataclasses
import json
import zipfile

import numpy as np
import pytest
from scipy import ndimage

from voxelstudio.cli import main
from voxelstudio.cli.denoise_commands import train_config_from_args
from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume

TINY = {
    "model": {"arch": "simple", "filters": 2, "kernel": [3, 3, 3], "n_layers": 2},
    "epochs": 2,
    "steps_per_epoch": 2,
    "batch_size": 2,
    "patch_shape": [16, 16, 8],
}


def write_pair(folder, seed, stem):
    rng = np.random.default_rng(seed)
    target = ndimage.gaussian_filter((rng.random((20, 20, 10)) < 5e-3).astype(np.float32), 1.0)
    target /= max(float(target.max()), 1e-6)
    raw = ndimage.gaussian_filter(target, (1.5, 1.5, 3.0)) + 0.1 * rng.normal(size=target.shape)
    for kind, data in (("raw", raw), ("target", target)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        save_volume(Volume(data, spacing=(0.2, 0.2, 0.5)), folder / kind / f"{stem}.mat")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    for seed, stem in enumerate(["a", "b", "c"]):
        write_pair(root, seed, stem)
    config = root / "tiny.json"
    config.write_text(json.dumps(TINY))
    return root, config


@pytest.fixture(scope="module")
def trained(data):
    root, config = data
    out = root / "model.keras"
    code = main(["train-denoiser", "--raw", str(root / "raw"), "--target", str(root / "target"),
                 "--config", str(config), "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    return out


def test_train_writes_model_and_checkpoint(trained, capsys):
    assert trained.exists() and trained.with_name("model.last.keras").exists()
    state = json.loads(trained.with_name("model.last.json").read_text())
    assert state["epoch"] == 2


def test_train_resume_and_epochs_option(data, trained, capsys):
    root, config = data
    code = main(["train-denoiser", "--raw", str(root / "raw"), "--target", str(root / "target"), "--config",
                 str(config), "--epochs", "3", "--resume", "--out", str(trained), "--quiet"])  # fmt: skip
    assert code == 0
    assert "3 epochs; stopped: epochs" in capsys.readouterr().out


def test_options_override_the_config_file(data):
    _, config = data
    args = argparse.Namespace(
        config=str(config), preset=None, arch="unet", loss="mae", epochs=7, minutes=1.5, lr=0.01, batch_size=3,
        patch="32,24,8", seed=4,
    )  # fmt: skip
    cfg = train_config_from_args(args)
    assert cfg.model.arch == "unet" and cfg.loss.name == "mae" and cfg.epochs == 7 and cfg.minutes == 1.5
    assert cfg.learning_rate == 0.01 and cfg.batch_size == 3 and cfg.patch_shape == (32, 24, 8) and cfg.seed == 4
    plain = train_config_from_args(argparse.Namespace(**{**vars(args), "arch": None, "loss": None, "patch": None}))
    assert plain.model.filters == 2 and plain.steps_per_epoch == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--patch", "16,16"], "--patch: expected three positive integers"),
        (["--val-raw", "x.mat"], "--val-raw and --val-target go together"),
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--seed", "-1"], "seed must be a whole number >= 0, got -1"),
    ],
)
def test_train_usage_errors_exit_2(data, tmp_path, capsys, extra, message):
    root, config = data
    argv = ["train-denoiser", "--raw", str(root / "raw"), "--target", str(root / "target"),
            "--config", str(config), "--out", str(tmp_path / "m.keras"), "--quiet", *extra]  # fmt: skip
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.keras").exists()


def test_the_model_trained_from_is_never_the_output(data, trained, tmp_path, capsys):
    """--init m.keras --out m.keras --overwrite replaced the starting model with the new run's."""
    root, config = data
    start = tmp_path / "start.keras"
    start.write_bytes(trained.read_bytes())
    argv = ["train-denoiser", "--raw", str(root / "raw"), "--target", str(root / "target"), "--config", str(config),
            "--init", str(start), "--out", str(start), "--overwrite", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "is the model it starts from (--init): the output would replace it" in capsys.readouterr().err
    assert start.read_bytes() == trained.read_bytes()


def test_train_requires_out(data):
    root, _ = data
    with pytest.raises(SystemExit) as exc:
        main(["train-denoiser", "--raw", str(root / "raw"), "--target", str(root / "target")])
    assert exc.value.code == 2


def test_denoise_writes_outputs(data, trained, tmp_path, capsys):
    root, _ = data
    out_dir = tmp_path / "den"
    inputs = [str(root / "raw" / "a.mat"), str(root / "raw" / "b.mat")]
    assert main(["denoise", *inputs, "--model", str(trained), "--out-dir", str(out_dir), "--quiet"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.mat", "a.mat.json", "b.mat", "b.mat.json"]
    assert str(out_dir / "a.mat") in capsys.readouterr().out
    assert main(["denoise", inputs[0], "--model", str(trained), "--out-dir", str(out_dir), "--format", "tif",
                 "--tta", "--tile", "16,16,16", "--quiet"]) == 0  # fmt: skip
    assert (out_dir / "a.tif").exists() and (out_dir / "a_uncertainty.tif").exists()


def test_denoise_errors_exit_2_with_one_line(data, trained, tmp_path, capsys):
    root, _ = data
    source = root / "raw" / "c.mat"
    before = source.read_bytes()
    assert main(["denoise", str(source), "--model", str(trained), "--out-dir", str(source.parent), "--quiet"]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert source.read_bytes() == before
    broken = tmp_path / "broken.keras"
    broken.write_text("nope")
    assert main(["denoise", str(source), "--model", str(broken), "--out-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("voxelstudio: error: ") and "broken.keras" in err and err.count("\n") == 1
    assert main(["denoise", str(source), "--model", str(trained), "--tile", "a,b,c", "--quiet"]) == 2
    capsys.readouterr()
    assert main(["denoise", str(source), "--model", str(broken), "--out-dir", str(source), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().endswith("c.mat: is a file, not a folder")  # checked before the model
    with pytest.raises(SystemExit) as exc:
        main(["denoise", str(source), "--format", "png"])
    assert exc.value.code == 2


def _preset_args(**overrides) -> argparse.Namespace:
    values = dict(config=None, preset=None, arch=None, loss=None, epochs=None, minutes=None, lr=None,
                  batch_size=None, patch=None, seed=None)  # fmt: skip
    return argparse.Namespace(**{**values, **overrides})


@pytest.mark.parametrize(("preset", "kind", "expected"), [
    (None, "CPU", "cpu"), (None, "GPU", "gpu"), ("auto", "GPU", "gpu"), ("cpu", "GPU", "cpu"), ("gpu", "CPU", "gpu"),
])  # fmt: skip
def test_preset_follows_the_device_and_is_recorded(preset, kind, expected):
    cfg = train_config_from_args(_preset_args(preset=preset), device_kind=lambda: kind)
    assert cfg.preset == expected
    assert cfg.mixed_precision is (expected == "gpu")
    assert (cfg.model.filters, cfg.batch_size) == ((32, 16) if expected == "gpu" else (8, 4))


def test_options_override_the_gpu_preset():
    cfg = train_config_from_args(_preset_args(preset="gpu", batch_size=6, patch="64,64,16"), device_kind=lambda: "")
    assert cfg.preset == "gpu" and cfg.batch_size == 6 and cfg.patch_shape == (64, 64, 16) and cfg.model.filters == 32


def test_spacing_input_conditions_the_recipes_network_but_not_a_starting_models(trained):
    cfg = train_config_from_args(_preset_args(preset="cpu", spacing_input=True), device_kind=lambda: "")
    assert cfg.model.spacing_input and cfg.model.arch == "unet"
    assert not train_config_from_args(_preset_args(preset="cpu"), device_kind=lambda: "").model.spacing_input
    with pytest.raises(ValueError, match="--spacing-input: the model training starts from does not take"):
        train_config_from_args(_preset_args(init=str(trained), spacing_input=True), device_kind=lambda: "")


def test_denoise_voxel_size_option_is_parsed_or_refused(capsys):
    from voxelstudio.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["denoise", "in.mat", "--voxel-size", "0.1,0.1,0.25"])
    assert args.voxel_size == (0.1, 0.1, 0.25)
    assert parser.parse_args(["denoise", "in.mat", "--voxel-size", "0.1x0.1x0.25"]).voxel_size == (0.1, 0.1, 0.25)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["denoise", "in.mat", "--voxel-size", "0.1,0"])
    assert exit_info.value.code == 2 and "three positive numbers" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["denoise", "deconvolve"])
def test_an_out_dir_named_like_a_file_is_refused_unless_it_is_a_folder(command, tmp_path, capsys):
    from voxelstudio.cli import build_parser

    parser = build_parser()
    for name in ("clean.tif", "clean.MAT", "clean.ome.zarr"):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "in.mat", "--out", str(tmp_path / name)])  # --out: argparse's abbreviation
        assert exit_info.value.code == 2
        assert f"'{tmp_path / name}' looks like a file name, but this is the folder" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    (tmp_path / "results.tif").mkdir()  # a folder that happens to have such a name is taken
    assert parser.parse_args([command, "in.mat", "--out-dir", str(tmp_path / "results.tif")]).out_dir.is_dir()
    assert parser.parse_args([command, "in.mat", "--out-dir", str(tmp_path / "v1.5")]).out_dir == tmp_path / "v1.5"


def test_init_brings_its_architecture_into_the_preset_recipe(trained, tmp_path):
    from voxelstudio.ml.bundled import read_train_config

    cfg = train_config_from_args(_preset_args(preset="cpu", init=str(trained), batch_size=3), device_kind=lambda: "")
    assert cfg.model == read_train_config(trained).model  # the tiny simple CNN, not the preset's U-Net
    assert cfg.preset == "cpu" and cfg.batch_size == 3
    same = train_config_from_args(_preset_args(init=str(trained), arch="simple"), device_kind=lambda: "")
    assert same.model == cfg.model
    with pytest.raises(ValueError, match=r"--arch unet: .*model.keras is a simple, 2 filters.*keeps that"):
        train_config_from_args(_preset_args(init=str(trained), arch="unet"), device_kind=lambda: "")
    with pytest.raises(ValueError, match=r"nothing.keras: not a readable model file"):
        train_config_from_args(_preset_args(init=str(tmp_path / "nothing.keras")), device_kind=lambda: "")
    package = tmp_path / "package.zip"  # a model file without VoxelStudio's config (a BioImage package)
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\n")
    plain = train_config_from_args(_preset_args(preset="cpu", init=str(package)), device_kind=lambda: "")
    assert plain.model == train_config_from_args(_preset_args(preset="cpu"), device_kind=lambda: "").model


def test_resume_continues_in_the_checkpoint_architecture(trained, tmp_path):
    """A run started with --init (another architecture than the preset's) resumes without repeating --init."""
    import shutil

    from voxelstudio.ml.bundled import read_train_config

    out = tmp_path / "m.keras"
    fresh = train_config_from_args(_preset_args(preset="cpu", resume=True, out=str(out)), device_kind=lambda: "")
    assert fresh.model.arch == "unet"  # no checkpoint yet: the preset's
    shutil.copy(trained, tmp_path / "m.last.keras")
    cfg = train_config_from_args(_preset_args(resume=True, out=str(out)), device_kind=lambda: "")
    assert cfg.model == read_train_config(trained).model


def test_resume_goes_on_with_the_checkpoints_config_and_refuses_to_change_the_run(trained, tmp_path):
    import shutil

    from voxelstudio.ml.bundled import read_train_config

    shutil.copy(trained, tmp_path / "m.last.keras")
    saved = read_train_config(trained)
    out = str(tmp_path / "m.keras")

    cfg = train_config_from_args(_preset_args(resume=True, out=out, epochs=saved.epochs + 5, patch="8,8,8"))

    assert cfg == dataclasses.replace(saved, epochs=saved.epochs + 5, patch_shape=(8, 8, 8))  # nothing else moved
    same = train_config_from_args(_preset_args(resume=True, out=out, loss=saved.loss.name, seed=saved.seed))
    assert same == saved
    changes = [("loss", "mae", "loss"), ("seed", saved.seed + 1, "seed"),
               ("lr", saved.learning_rate * 10, "learning rate"), ("arch", "unet", "architecture")]  # fmt: skip
    for option, value, what in changes:
        with pytest.raises(ValueError, match=rf"--{option} {value}: the run --resume continues has {what} "):
            train_config_from_args(_preset_args(resume=True, out=out, **{option: value}))
    with pytest.raises(ValueError, match=r"--preset: --resume goes on with m.last.keras's own recipe"):
        train_config_from_args(_preset_args(resume=True, out=out, preset="gpu"))


def test_config_and_preset_do_not_mix(data):
    _, config = data
    with pytest.raises(ValueError, match="--config or --preset, not both"):
        train_config_from_args(_preset_args(config=str(config), preset="gpu"))


def test_from_scratch_is_the_explicit_opposite_of_init(data, tmp_path, monkeypatch, capsys):
    root, config = data
    starts = []

    def fake_train(pairs, **kwargs):
        starts.append(kwargs["init"])
        from voxelstudio.tasks.train import TrainResult

        return TrainResult(tmp_path / "m.keras", {}, 0.1, 1, "epochs")

    monkeypatch.setattr("voxelstudio.tasks.train.train_denoiser", fake_train)
    argv = ["train-denoiser", "--raw", str(root / "raw"), "--target", str(root / "target"), "--config", str(config),
            "--out", str(tmp_path / "m.keras"), "--quiet"]  # fmt: skip
    assert main([*argv, "--from-scratch"]) == 0
    assert main([*argv, "--init", "start.keras"]) == 0
    assert starts == [None, "start.keras"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--from-scratch", "--init", "start.keras"])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_an_existing_or_unwritable_out_is_refused_before_any_training(data, tmp_path, monkeypatch, capsys):
    root, config = data
    calls = []

    def fake_train(pairs, **kwargs):
        calls.append(kwargs["out"])
        from voxelstudio.tasks.train import TrainResult

        return TrainResult(kwargs["out"], {}, 0.1, 1, "epochs")

    monkeypatch.setattr("voxelstudio.tasks.train.train_denoiser", fake_train)
    existing = tmp_path / "kept.keras"
    existing.write_bytes(b"a model the user keeps")
    argv = ["train-denoiser", "--raw", str(root / "raw"), "--target", str(root / "target"), "--config", str(config),
            "--quiet"]  # fmt: skip
    for out, problem in [(existing, "already exists; pass --overwrite to replace it"),
                         (tmp_path / "missing" / "m.keras", "does not exist"),
                         (tmp_path, "is a folder, not a file")]:  # fmt: skip
        assert main([*argv, "--out", str(out)]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"{out}: " in last and problem in last
    assert calls == [] and existing.read_bytes() == b"a model the user keeps"
    assert not (tmp_path / "missing").exists()
    assert main([*argv, "--out", str(existing), "--overwrite"]) == 0
    assert main([*argv, "--out", str(existing), "--resume"]) == 0  # continuing it is not replacing it
    assert calls == [existing, existing]


def test_a_config_file_with_a_wrong_type_is_one_line_naming_it(data, tmp_path, capsys):
    root, _ = data
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({**TINY, "batch_size": 1.5}))
    argv = ["train-denoiser", "--raw", str(root / "raw"), "--target", str(root / "target"), "--config", str(config),
            "--out", str(tmp_path / "m.keras"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert f"{config}: TrainConfig field 'batch_size' must be an integer, got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "m.keras").exists()
    config.write_bytes(bytes(range(128, 256)))
    assert main(argv) == 2
    assert f"{config}: not a JSON config file (binary content)" in capsys.readouterr().err
