"""``convert``/``info``/``denoise`` with OME-Zarr and OME-TIFF; bad stores and an unreachable scheduler exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from voxelstudio.cli import main
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.io.zarr_ import multiscales_attrs

SPACING = (0.1, 0.2, 0.5)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import keras

    from voxelstudio.core.normalize import PercentileNormalizer
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.persistence import save_model

    keras.utils.set_random_seed(0)
    cfg = TrainConfig(model=DenoiserConfig.for_arch("simple", filters=2, kernel=(3, 3, 3), n_layers=2))
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    save_model(build_denoiser(cfg.model), path, train_config=cfg, normalizer=PercentileNormalizer(), extra={})
    return path


@pytest.fixture
def store(tmp_path):
    data = np.random.default_rng(0).random((20, 18, 6)).astype(np.float32)
    np.save(tmp_path / "scan.npy", data)
    save_volume(Volume(data, spacing=SPACING), tmp_path / "scan.ome.zarr")
    return tmp_path / "scan.ome.zarr"


def test_convert_and_info(tmp_path, store, capsys):
    assert main(["convert", str(tmp_path / "scan.npy"), str(tmp_path / "b.ome.zarr")]) == 0
    assert main(["convert", str(store), str(tmp_path / "c.ome.tif")]) == 0
    assert load_volume(tmp_path / "c.ome.tif").spacing == pytest.approx(SPACING)
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "ome-zarr" in out and "20x18x6" in out


def test_info_lists_a_store_too_big_to_read_without_reading_it(tmp_path, monkeypatch, capsys):
    from voxelstudio.cli import data_commands

    root = zarr.open_group(str(tmp_path / "big.ome.zarr"), mode="w", zarr_format=2)
    root.attrs.update(multiscales_attrs("big", SPACING))
    root.attrs["multiscales"][0]["datasets"].append(
        {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.2, 0.4]}]}
    )
    root.attrs["multiscales"] = root.attrs["multiscales"]  # written back: attrs are stored, not live
    root.create_array("0", shape=(64, 512, 512), dtype="uint16", chunks=(16, 128, 128))  # 32 MB, no chunk written
    root.create_array("1", shape=(64, 256, 256), dtype="uint16", chunks=(16, 128, 128))[...] = 7
    monkeypatch.setattr(data_commands, "STORE_READ_LIMIT_BYTES", 16 * 2**20)  # level 0 stands for a huge store

    assert main(["info", str(tmp_path / "big.ome.zarr")]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[3].split()[:5] == ["0", "512x512x64", "uint16", "-", "-"]
    assert lines[3].endswith("<- volume; 33.6 MB, not read (processed block by block)")
    assert lines[4].split()[:5] == ["1", "256x256x64", "uint16", "7", "7"]  # small enough to read
    assert lines[5] == "volume:  0 (512x512x64, 33.6 MB: denoise --format zarr reads it block by block)"
    assert lines[6] == "spacing: y=0.1 x=0.2 z=0.5 um"


def test_info_takes_the_variable_as_given_and_names_a_plain_array(tmp_path, capsys, monkeypatch):
    from voxelstudio.cli import data_commands

    monkeypatch.setattr(data_commands, "STORE_READ_LIMIT_BYTES", 2000)  # one channel (1344 B) in, both (2688 B) not
    root = zarr.open_group(str(tmp_path / "czyx.ome.zarr"), mode="w", zarr_format=2)
    axes = [{"name": "c", "type": "channel"}] + [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": [1.0, 0.5, 0.1, 0.2]}]
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]
    root.create_array("0", shape=(2, 6, 8, 7), dtype="float32")[...] = np.arange(2).reshape(2, 1, 1, 1) + 1.0
    assert main(["info", str(tmp_path / "czyx.ome.zarr"), "--variable", "0[c=1]"]) == 0
    assert "volume:  0[c=1] (8x7x6, loaded as float32)" in capsys.readouterr().out

    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(6, 8, 7), dtype="uint8", zarr_format=3)[...] = 3
    assert main(["info", str(tmp_path / "plain.zarr")]) == 0
    out = capsys.readouterr().out
    assert "array  8x7x6  uint8  3    3    <- volume" in out and "volume:  array (8x7x6" in out
    assert load_volume(tmp_path / "plain.zarr", "array").shape == (8, 7, 6)


def test_denoise_zarr_block_wise_and_to_ome_tif(tmp_path, store, model, capsys):
    out_dir = tmp_path / "out"
    args = ["denoise", str(store), "--model", str(model), "--out-dir", str(out_dir), "--quiet"]
    assert main([*args, "--format", "zarr", "--block", "8,8,6"]) == 0
    assert main([*args, "--format", "ome.tif"]) == 0
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["scan.ome.tif", "scan.ome.tif.json", "scan.ome.zarr", "scan.ome.zarr.json"]
    block_wise, whole = load_volume(out_dir / "scan.ome.zarr"), load_volume(out_dir / "scan.ome.tif")
    np.testing.assert_allclose(block_wise.data, whole.data, rtol=1e-5, atol=1e-6)
    assert block_wise.spacing == pytest.approx(SPACING) and whole.spacing == pytest.approx(SPACING)
    provenance = json.loads((out_dir / "scan.ome.zarr.json").read_text())
    assert provenance["blockwise"]["blocks"] == 9 and provenance["blockwise"]["scheduler"] is None


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("voxelstudio: error:")
    return err[0]


def test_bad_stores_exit_2_and_write_nothing(tmp_path, model, capsys):
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    root = zarr.open_group(str(tmp_path / "tc.ome.zarr"), mode="w", zarr_format=2)
    axes = [{"name": "c", "type": "channel"}] + [{"name": a, "type": "space"} for a in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    root.create_array("0", shape=(2, 4, 5, 6), dtype="float32")
    out_dir = tmp_path / "out"
    for name, words in (("empty.zarr", "no array"), ("tc.ome.zarr", "2 channels (axis c")):
        code = main(["denoise", str(tmp_path / name), "--model", str(model), "--out-dir", str(out_dir),
                     "--format", "zarr", "--quiet"])  # fmt: skip
        assert code == 2 and words in error_line(capsys)
        assert not out_dir.exists() or list(out_dir.iterdir()) == []  # not even a temporary store


def test_unreachable_scheduler_exits_2_within_the_timeout(store, model, tmp_path, capsys):
    started = time.monotonic()
    code = main(["denoise", str(store), "--model", str(model), "--out-dir", str(tmp_path / "out"), "--format",
                 "zarr", "--scheduler", "tcp://127.0.0.1:1", "--quiet"])  # fmt: skip
    assert code == 2 and "cannot reach the dask scheduler at tcp://127.0.0.1:1 within 10 s" in error_line(capsys)
    assert time.monotonic() - started < 30
    assert list((tmp_path / "out").iterdir()) == []


def test_resume_goes_on_past_an_output_an_earlier_run_finished(tmp_path, store, model, capsys):
    second = tmp_path / "second.ome.zarr"
    save_volume(Volume(np.ones((12, 10, 4), np.float32), spacing=SPACING), second)
    out_dir = tmp_path / "out"
    args = ["denoise", str(store), "--model", str(model), "--out-dir", str(out_dir), "--format", "zarr", "--quiet"]
    assert main(args) == 0  # the first input finishes; the second is never started
    finished = (out_dir / "scan.ome.zarr" / ".zattrs").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args[:2], str(second), *args[2:], "--resume"]) == 0
    assert capsys.readouterr().out.split() == [str(out_dir / "scan.ome.zarr"), str(out_dir / "second.ome.zarr")]
    assert load_volume(out_dir / "second.ome.zarr").shape == (12, 10, 4)
    assert (out_dir / "scan.ome.zarr" / ".zattrs").stat().st_mtime_ns == finished  # kept, not redone


def test_resume_refuses_an_output_another_model_made(tmp_path, store, model, capsys):
    out_dir = tmp_path / "out"
    args = ["denoise", str(store), "--model", str(model), "--out-dir", str(out_dir), "--format", "zarr", "--quiet"]
    assert main(args) == 0
    sidecar = out_dir / "scan.ome.zarr.json"
    record = json.loads(sidecar.read_text())
    record["model"]["sha256"] = "0" * 64  # as if an earlier run had used another model
    sidecar.write_text(json.dumps(record))
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    assert "scan.ome.zarr: made by another model (sha256 000000000000" in error_line(capsys)
    assert main([*args, "--overwrite"]) == 0  # what the message offers


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--format", "zarr", "--block", "8,8,4"], "other.npy: --block works on Zarr stores only"),
        (["--format", "tif", "--block", "8,8,4"], "--block: only for Zarr stores"),
        (["--format", "zarr", "--memory-limit", "1GB"], "other.npy: --memory-limit works on Zarr stores only"),
        (["--format", "zarr", "--memory-limit", "lots"], "--memory-limit: expected a size of at least 64MiB such"),
        (["--format", "zarr", "--memory-limit", "1500"], "--memory-limit: expected a size of at least 64MiB"),
        (["--format", "zarr", "--memory-limit", "1GB", "--tile", "32,32,16"], "--memory-limit and --tile: give one"),
    ],
)
def test_block_wise_options_that_do_not_apply_stop_before_any_work(tmp_path, store, model, capsys, extra, words):
    out_dir = tmp_path / "out"
    (tmp_path / "scan.npy").rename(tmp_path / "other.npy")
    # the Zarr store comes first: it would be denoised before the .npy input is reached
    code = main(["denoise", str(store), str(tmp_path / "other.npy"), "--model", str(model), "--out-dir",
                 str(out_dir), "--quiet", *extra])  # fmt: skip
    assert code == 2 and words in error_line(capsys)
    assert not out_dir.exists()


def test_tta_uncertainty_is_named_after_the_volume_and_block_wise_tta_writes_both_stores(tmp_path, store, model):
    import tifffile

    tifffile.imwrite(tmp_path / "scan.ome.tif", np.zeros((6, 20, 18), np.float32), ome=True)
    out_dir = tmp_path / "out"
    base = ["denoise", "--model", str(model), "--out-dir", str(out_dir), "--quiet", "--tta"]
    assert main([*base, str(tmp_path / "scan.ome.tif"), "--format", "npy"]) == 0
    assert main([*base, str(store), "--format", "zarr", "--block", "12,10,6"]) == 0
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["scan.npy", "scan.npy.json", "scan.ome.zarr", "scan.ome.zarr.json", "scan_uncertainty.npy",
                     "scan_uncertainty.ome.zarr"]  # fmt: skip
    provenance = json.loads((out_dir / "scan.ome.zarr.json").read_text())
    assert provenance["tiling"]["transforms"] == 8
    assert provenance["uncertainty_output"] == str((out_dir / "scan_uncertainty.ome.zarr").resolve())
    spread = load_volume(out_dir / "scan_uncertainty.ome.zarr")
    assert spread.shape == (20, 18, 6) and spread.data.min() >= 0 and spread.data.max() > 0


def test_block_wise_denoise_loads_and_hashes_the_model_once(tmp_path, store, model, monkeypatch):
    from voxelstudio.ml import persistence
    from voxelstudio.tasks import block_predict
    from voxelstudio.tasks.denoise import denoise_files

    calls = {"load": 0, "hash": 0}
    real_load, real_hash = persistence.load_model, persistence.file_sha256

    def load(*args, **kwargs):
        calls["load"] += 1
        return real_load(*args, **kwargs)

    def sha(*args, **kwargs):
        calls["hash"] += 1
        return real_hash(*args, **kwargs)

    monkeypatch.setattr(persistence, "load_model", load)
    monkeypatch.setattr(persistence, "file_sha256", sha)
    monkeypatch.setattr(block_predict, "_MODELS", {})
    denoise_files([store], model_path=model, out_dir=tmp_path / "out", fmt="zarr", block=(10, 9, 6))
    assert calls == {"load": 1, "hash": 1}
    provenance = json.loads((tmp_path / "out" / "scan.ome.zarr.json").read_text())
    assert provenance["model"]["sha256"] == real_hash(model) and provenance["input"]["shape"] == [20, 18, 6]
    assert {"created_at", "versions", "device", "tiling", "blockwise"} <= set(provenance)


def test_ome_tiff_without_a_z_step_gets_the_default_one_and_one_warning_line(tmp_path):
    import tifffile

    path = tmp_path / "flat.ome.tif"
    metadata = {"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2}
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.float32), ome=True, metadata=metadata)
    with pytest.warns(UserWarning, match="no PhysicalSizeZ; using the default z step 1.0"):
        assert load_volume(path).spacing == pytest.approx((0.2, 0.2, 1.0))
    run = subprocess.run([sys.executable, "-m", "voxelstudio", "info", str(path)], capture_output=True, text=True)
    assert run.returncode == 0 and "spacing: y=0.2 x=0.2 z=1 um" in run.stdout
    warning = [line for line in run.stderr.splitlines() if line]
    assert len(warning) == 1 and warning[0].startswith("voxelstudio: warning: ") and "PhysicalSizeZ" in warning[0]


def test_output_names_drop_double_suffixes_and_never_replace_the_input(tmp_path):
    from voxelstudio.core.errors import VolumeWriteError
    from voxelstudio.io.api import output_path

    assert output_path(tmp_path / "scan.ome.tif", tmp_path / "d", "npy") == tmp_path / "d" / "scan.npy"
    spread = output_path(tmp_path / "scan.ome.zarr", tmp_path, "ome.tif", suffix="_uncertainty")
    assert spread == tmp_path / "scan_uncertainty.ome.tif"
    with pytest.raises(VolumeWriteError, match="is the input file"):
        output_path(tmp_path / "scan.ome.tif", tmp_path, "ome.tif")


def test_many_files_on_a_local_cluster_log_one_model_load_per_worker(tmp_path, model, capfd):
    """capfd: the workers write to this process's stderr descriptor, TensorFlow's native start-up lines included
    (filtered out now, as the CLI filters its own)."""
    rng = np.random.default_rng(3)
    inputs = []
    for i in range(3):
        np.save(tmp_path / f"s{i}.npy", rng.random((12, 10, 4)).astype(np.float32))
        inputs.append(str(tmp_path / f"s{i}.npy"))
    out_dir = tmp_path / "out"
    args = ["denoise", *inputs, "--model", str(model), "--out-dir", str(out_dir), "--format", "npy", "--quiet"]
    assert main([*args, "--scheduler", "local:2"]) == 0
    captured = capfd.readouterr()
    assert "absl::InitializeLog" not in captured.err and "I0000 " not in captured.err
    assert captured.out.split() == [str(out_dir / f"s{i}.npy") for i in range(3)]
    loads = [line for line in captured.err.splitlines() if "loaded the model tiny.keras" in line]
    assert 1 <= len(loads) <= 2 and all(line.startswith("voxelstudio: worker tcp://") for line in loads)
    summary = f"voxelstudio: model loaded once on each of {len(loads)} workers"
    assert summary in captured.err.splitlines()
    assert main([*args, "--out-dir", str(tmp_path / "here")]) == 0  # in-process: the same values
    for i in range(3):
        np.testing.assert_allclose(
            np.load(out_dir / f"s{i}.npy"), np.load(tmp_path / "here" / f"s{i}.npy"), rtol=1e-5, atol=1e-6
        )


def _two_channel_store(path):
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    axes = [{"name": "c", "type": "channel"}] + [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": [1.0, 0.5, 0.1, 0.2]}]
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]
    channels = np.random.default_rng(1).random((2, 6, 20, 18)).astype(np.float32)
    root.create_array("0", shape=channels.shape, dtype="float32", chunks=(1, 6, 10, 9))[...] = channels
    return channels


def test_denoise_takes_the_variable_of_a_channel_block_wise_and_whole(tmp_path, model, capsys):
    """A channel of a store (too big to convert first, say) is denoised as if it were stored alone."""
    channels = _two_channel_store(tmp_path / "czyx.ome.zarr")
    save_volume(Volume(channels[1].transpose(1, 2, 0), spacing=SPACING), tmp_path / "alone.ome.zarr")
    results = {}
    for source, pick in (("czyx.ome.zarr", ["--variable", "0[c=1]"]), ("alone.ome.zarr", [])):
        for fmt, extra in (("zarr", ["--block", "8,8,6"]), ("npy", [])):
            out_dir = tmp_path / source / fmt
            args = ["denoise", str(tmp_path / source), "--model", str(model), "--out-dir", str(out_dir)]
            assert main([*args, "--format", fmt, *extra, *pick, "--quiet"]) == 0
            [output] = [p for p in out_dir.iterdir() if not p.name.endswith(".json")]
            results[source, fmt] = load_volume(output).data
            sidecar = json.loads((out_dir / f"{output.name}.json").read_text())
            assert sidecar["input"]["variable"] == ("0[c=1]" if pick else None)
    for fmt in ("zarr", "npy"):
        np.testing.assert_allclose(results["czyx.ome.zarr", fmt], results["alone.ome.zarr", fmt], atol=1e-6)
    code = main(["denoise", str(tmp_path / "czyx.ome.zarr"), "--model", str(model), "--out-dir",
                 str(tmp_path / "none"), "--quiet"])  # fmt: skip
    assert code == 2 and "--variable NAME with info, convert or denoise" in error_line(capsys)


def test_resume_refuses_an_output_made_from_another_variable(tmp_path, model, capsys):
    _two_channel_store(tmp_path / "czyx.ome.zarr")
    out_dir = tmp_path / "out"
    args = ["denoise", str(tmp_path / "czyx.ome.zarr"), "--model", str(model), "--out-dir", str(out_dir), "--quiet"]
    assert main([*args, "--variable", "0[c=0]"]) == 0
    assert main([*args, "--variable", "0[c=0]", "--resume"]) == 0  # the same array: kept
    assert main([*args, "--variable", "0[c=1]", "--resume"]) == 2
    assert "made from '0[c=0]', not '0[c=1]'; --resume goes on with the same --variable only" in error_line(capsys)
