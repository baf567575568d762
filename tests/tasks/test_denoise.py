"""tasks.denoise: predictions with provenance, files + sidecars, never over the input, clear model errors."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from voxelstudio.core import memory
from voxelstudio.core.errors import Cancelled, ModelError, VolumeReadError, VolumeWriteError, VoxelStudioError
from voxelstudio.core.progress import CancelToken
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.tasks import denoise
from voxelstudio.tasks.denoise import denoise_files, denoise_volume


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An untrained tiny simple denoiser saved with VoxelStudio metadata (weights do not matter here)."""
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


def volume(shape=(20, 18, 6), seed=0) -> Volume:
    data = np.random.default_rng(seed).random(shape).astype(np.float32)
    return Volume(data, spacing=(0.1, 0.1, 0.3), name="scan", metadata={"variable": "stack"})


def test_denoise_volume_returns_prediction_and_provenance(model_path):
    from voxelstudio.ml.persistence import file_sha256

    result = denoise_volume(volume(), model_path=model_path)
    assert result.prediction.shape == (20, 18, 6) and result.prediction.spacing == (0.1, 0.1, 0.3)
    assert result.prediction.name == "scan_denoised" and result.uncertainty is None
    provenance = result.provenance
    assert provenance["model"]["sha256"] == file_sha256(model_path)
    assert provenance["model"]["train_config"]["model"]["arch"] == "simple"
    assert set(provenance["versions"]) == {"voxelstudio", "tensorflow", "keras", "numpy"}
    assert provenance["tiling"]["tiles"] >= 1 and provenance["input"]["shape"] == [20, 18, 6]
    json.dumps(provenance)  # serialisable as it is


def test_tta_adds_uncertainty_volume(model_path):
    result = denoise_volume(volume(), model_path=model_path, tta=True)
    assert result.uncertainty is not None and result.uncertainty.shape == (20, 18, 6)
    assert result.uncertainty.data.min() >= 0 and result.uncertainty.data.max() > 0  # the 8 views disagree somewhere
    assert result.provenance["tiling"]["transforms"] == 8


def test_missing_default_model_is_a_clear_error(monkeypatch):
    def missing(*parts):
        raise FileNotFoundError("gone")

    monkeypatch.setattr(denoise, "resource_path", missing)
    with pytest.raises(ModelError, match="bundled default model is missing; pass a model file"):
        denoise_volume(volume())


def test_bad_model_files_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(ModelError, match=r"garbage\.keras"):
        denoise_volume(volume(), model_path=garbage)
    with pytest.raises(ModelError, match="not found"):
        denoise_volume(volume(), model_path=tmp_path / "absent.keras")


def test_memory_preflight_refuses_with_the_amount_needed(model_path, monkeypatch):
    monkeypatch.setattr(memory.psutil, "virtual_memory", lambda: SimpleNamespace(available=1000))
    with pytest.raises(VoxelStudioError, match=r"needs about [0-9.]+ GiB of memory but only 0.0 GiB"):
        denoise_volume(volume(), model_path=model_path)


def test_cancel_stops_prediction(model_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        denoise_volume(volume(), model_path=model_path, cancel=token)


def test_denoise_files_writes_output_and_sidecar(model_path, tmp_path):
    (tmp_path / "in").mkdir()
    source = save_volume(volume(), tmp_path / "in" / "scan.mat")
    out_dir = tmp_path / "out"
    outputs = denoise_files([source], model_path=model_path, out_dir=out_dir, fmt="mat", tta=True)
    assert outputs == [out_dir / "scan.mat"]
    written = load_volume(outputs[0])
    assert written.metadata["variable"] == "stack" and written.spacing == pytest.approx((0.1, 0.1, 0.3))
    expected = denoise_volume(load_volume(source), model_path=model_path, tta=True).prediction.data
    np.testing.assert_allclose(written.data, expected, rtol=1e-6, atol=1e-6)
    sidecar = json.loads((out_dir / "scan.mat.json").read_text())
    assert sidecar["input"]["path"] == str(source.resolve()) and sidecar["output"] == str(outputs[0].resolve())
    assert sidecar["model"]["path"] == str(model_path.resolve()) and sidecar["tiling"]["tta"] is True
    assert (out_dir / "scan_uncertainty.mat").exists()
    with pytest.raises(VolumeWriteError, match="already exists"):
        denoise_files([source], model_path=model_path, out_dir=out_dir)
    assert denoise_files([source], model_path=model_path, out_dir=out_dir, overwrite=True) == outputs


def test_an_output_already_there_stops_the_batch_before_any_prediction(tmp_path):
    """Checked before the model loads (here it does not even exist), for the last file of a batch and for a TTA
    uncertainty alone; --resume and --overwrite go on."""
    first, second = save_volume(volume(), tmp_path / "a.mat"), save_volume(volume(), tmp_path / "b.mat")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "b.mat").write_bytes(b"earlier")
    absent = tmp_path / "no-such-model.keras"
    with pytest.raises(VolumeWriteError, match=r"out/b\.mat: already exists; pass --overwrite to replace it"):
        denoise_files([first, second], model_path=absent, out_dir=out_dir)
    (out_dir / "b.mat").unlink()
    (out_dir / "a_uncertainty.mat").write_bytes(b"earlier")
    with pytest.raises(VolumeWriteError, match=r"out/a_uncertainty\.mat: already exists"):
        denoise_files([first, second], model_path=absent, out_dir=out_dir, tta=True)
    with pytest.raises(ModelError):  # past the check: the model is what fails now
        denoise_files([first, second], model_path=absent, out_dir=out_dir, tta=True, overwrite=True)
    assert sorted(p.name for p in out_dir.iterdir()) == ["a_uncertainty.mat"]


def test_a_bad_file_anywhere_in_the_batch_stops_it_before_the_first_output(model_path, tmp_path):
    good = save_volume(volume(), tmp_path / "good.mat")
    text = tmp_path / "notes.mat"
    text.write_text("not a volume\n" * 20)
    with pytest.raises(VolumeReadError, match=r"notes\.mat: cannot read the file"):
        denoise_files([good, text], model_path=model_path, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_denoise_files_never_writes_over_the_input(model_path, tmp_path):
    source = save_volume(volume(), tmp_path / "scan.npy")
    before = source.read_bytes()
    with pytest.raises(VolumeWriteError, match="is the input file"):
        denoise_files([source], model_path=model_path, out_dir=tmp_path, fmt="npy", overwrite=True)
    assert source.read_bytes() == before
    (tmp_path / "b").mkdir()
    other = save_volume(volume(seed=1), tmp_path / "b" / "scan.mat")
    with pytest.raises(ValueError, match="would both write") as error:
        denoise_files([source, other], model_path=model_path, out_dir=tmp_path / "out", fmt="tif")
    assert str(source) in str(error.value) and str(other) in str(error.value)
    with pytest.raises(ValueError, match="unknown output format"):
        denoise_files([source], model_path=model_path, out_dir=tmp_path / "out", fmt="png")


def test_every_file_a_run_writes_is_checked_before_any_prediction(model_path, tmp_path):
    source = save_volume(volume(), tmp_path / "a.npy")
    named_like_its_spread = save_volume(volume(seed=1), tmp_path / "a_uncertainty.npy")
    with pytest.raises(ValueError, match=r"a\.npy and .*a_uncertainty\.npy would both write .*a_uncertainty\.mat"):
        denoise_files([source, named_like_its_spread], model_path=model_path, out_dir=tmp_path / "o", tta=True)
    assert not (tmp_path / "o").exists()

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.tif.json").write_text("{}")  # left by a run whose output was deleted
    with pytest.raises(VolumeWriteError, match=r"a\.tif\.json: already exists; pass --overwrite"):
        denoise_files([source], model_path=model_path, out_dir=out, fmt="tif")
    assert sorted(p.name for p in out.iterdir()) == ["a.tif.json"]
    (written,) = denoise_files([source], model_path=model_path, out_dir=out, fmt="tif", overwrite=True)
    assert json.loads((out / "a.tif.json").read_text())["output"] == str(written.resolve())


def test_a_variable_name_the_output_format_cannot_hold_becomes_voxel(model_path, tmp_path):
    np.savez(tmp_path / "named.npz", **{"volume-488": volume().data})  # a legal .npz key, no MATLAB name
    (written,) = denoise_files([tmp_path / "named.npz"], model_path=model_path, out_dir=tmp_path / "out")
    assert written.suffix == ".mat" and load_volume(written).metadata["variable"] == "voxel"


def test_denoise_files_in_tif_and_npy(model_path, tmp_path):
    source = save_volume(volume(), tmp_path / "scan.mat")
    expected = denoise_volume(load_volume(source), model_path=model_path).prediction.data
    denoise_files([source], model_path=model_path, out_dir=tmp_path / "tif", fmt="tif")
    with pytest.warns(UserWarning, match="--format npy cannot store the voxel size"):  # said, not lost silently
        denoise_files([source], model_path=model_path, out_dir=tmp_path / "npy", fmt="npy")
    for fmt in ("tif", "npy"):
        out = tmp_path / fmt / f"scan.{fmt}"
        assert out.suffix == f".{fmt}" and (tmp_path / fmt / f"scan.{fmt}.json").exists()
        np.testing.assert_allclose(load_volume(out).data, expected, rtol=1e-6, atol=1e-6)
    assert load_volume(tmp_path / "tif" / "scan.tif").spacing == pytest.approx(volume().spacing)  # npy holds none


def test_a_model_that_takes_the_voxel_size_uses_the_files_or_the_one_given(tmp_path):
    from tiny_denoisers import tiny_model  # beside this file

    model = tiny_model(tmp_path, "unet", spacing_input=True)
    (tmp_path / "in").mkdir()
    source = save_volume(volume(), tmp_path / "in" / "scan.mat")  # 0.1 x 0.1 x 0.3 µm
    own = denoise_volume(load_volume(source), model_path=model).prediction.data
    [written] = denoise_files([source], model_path=model, out_dir=tmp_path / "given", voxel_size=(0.2, 0.2, 0.2))
    given = load_volume(written)
    assert given.spacing == pytest.approx((0.2, 0.2, 0.2))  # the output records the voxel size it was given
    expected = denoise_volume(load_volume(source).replace(spacing=(0.2, 0.2, 0.2)), model_path=model).prediction
    np.testing.assert_allclose(given.data, expected.data, rtol=1e-6, atol=1e-6)
    assert np.abs(given.data - own).max() > 1e-4
    unknown = save_volume(volume().replace(spacing=(1.0, 1.0, 1.0)), tmp_path / "in" / "unknown.mat")
    with pytest.raises(VoxelStudioError, match=r"unknown\.mat: voxel size not known, .*--voxel-size"):
        denoise_files([unknown], model_path=model, out_dir=tmp_path / "out")
    far = save_volume(volume().replace(spacing=(2.0, 2.0, 2.0)), tmp_path / "in" / "far.mat")
    with pytest.raises(VoxelStudioError, match=r"far\.mat: .*\(2x2x2 µm\).*lateral 2 µm is outside"):
        denoise_files([far], model_path=model, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_models_input_shift_moves_scans_of_another_z_step_by_as_many_um(tmp_path):
    """Measured on 0.1-µm planes, -0.6 planes is -0.2 planes of a 0.3-µm scan; a file without a voxel size gets
    the shift as measured."""
    from tiny_denoisers import tiny_model  # beside this file

    from voxelstudio.core.volume import SPACING_GIVEN
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model

    path = tiny_model(tmp_path, "simple", input_shift=(0.0, 0.0, -0.6), shift_spacing=(0.1, 0.1, 0.1))
    data = volume(shape=(24, 24, 12)).data
    coarse = denoise_volume(Volume(data, (0.1, 0.1, 0.3)), model_path=path)
    assert coarse.provenance["model"]["input_shift_vox"] == pytest.approx([0.0, 0.0, -0.2])
    by_hand = predict_volume(dataclasses.replace(load_model(path), input_shift=(0.0, 0.0, -0.2)), data)[0]
    np.testing.assert_allclose(coarse.prediction.data, by_hand, rtol=1e-5, atol=1e-6)
    unknown = denoise_volume(Volume(data), model_path=path)  # 1 µm only because the file said nothing
    assert unknown.provenance["model"]["input_shift_vox"] == pytest.approx([0.0, 0.0, -0.6])
    given = denoise_volume(Volume(data, metadata={SPACING_GIVEN: True}), model_path=path)  # 1 µm voxels, said so
    assert given.provenance["model"]["input_shift_vox"] == pytest.approx([0.0, 0.0, -0.06])
    source = save_volume(Volume(data), tmp_path / "scan.npy")  # a file without a voxel size; --voxel-size 1,1,1
    [written] = denoise_files([source], model_path=path, out_dir=tmp_path / "out", voxel_size=(1.0, 1.0, 1.0))
    sidecar = json.loads(written.with_name(written.name + ".json").read_text())
    assert sidecar["model"]["input_shift_vox"] == pytest.approx([0.0, 0.0, -0.06])


def test_resume_goes_on_only_with_the_settings_the_finished_outputs_were_made_with(model_path, tmp_path):
    source = save_volume(volume(), tmp_path / "scan.mat")
    out_dir = tmp_path / "out"
    [written] = denoise_files([source], model_path=model_path, out_dir=out_dir)
    with pytest.raises(ValueError, match=r"scan\.mat: made without --tta; --resume goes on with the same settings"):
        denoise_files([source], model_path=model_path, out_dir=out_dir, resume=True, tta=True)
    with pytest.raises(
        ValueError, match=r"made with the voxel size \[0\.1, 0\.1, 0\.3\], not --voxel-size \[0\.1, 0\.1, 0\.2\]"
    ):
        denoise_files([source], model_path=model_path, out_dir=out_dir, resume=True, voxel_size=(0.1, 0.1, 0.2))
    assert denoise_files([source], model_path=model_path, out_dir=out_dir, resume=True) == [written]  # the same: kept
    assert sorted(p.name for p in out_dir.iterdir()) == ["scan.mat", "scan.mat.json"]
