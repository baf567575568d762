"""``convert``/``info``/``denoise`` with OME-Zarr and OME-TIFF; bad stores and an unreachable scheduler exit 2."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zarr

from voxelstudio.cli import main
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume

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
        assert list(out_dir.iterdir()) == []  # not even a temporary store


def test_unreachable_scheduler_exits_2_within_the_timeout(store, model, tmp_path, capsys):
    started = time.monotonic()
    code = main(["denoise", str(store), "--model", str(model), "--out-dir", str(tmp_path / "out"), "--format",
                 "zarr", "--scheduler", "tcp://127.0.0.1:1", "--quiet"])  # fmt: skip
    assert code == 2 and "cannot reach the dask scheduler at tcp://127.0.0.1:1 within 10 s" in error_line(capsys)
    assert time.monotonic() - started < 30
    assert list((tmp_path / "out").iterdir()) == []
