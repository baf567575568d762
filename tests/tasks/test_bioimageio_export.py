"""export-model --bioimageio: the package's files, its test tensors, the spec's verdict and reading it back."""

from __future__ import annotations

import importlib.util
import json
import zipfile

import numpy as np
import pytest
import yaml

from voxelstudio.core.errors import VolumeReadError
from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.core.volume import Volume
from voxelstudio.io import load_volume, save_volume
from voxelstudio.tasks import bioimageio_rdf as rdf
from voxelstudio.tasks.bioimageio_export import cover_image, crop_for_test, export_bioimageio

TINY = {"model": {"arch": "unet", "filters": 2, "depth": 2, "kernel": [3, 3, 3]}, "patch_shape": [16, 16, 8]}
SPACING = (0.2, 0.2, 0.5)


def has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from voxelstudio.ml.config import TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.persistence import save_model

    config = TrainConfig.from_dict(TINY)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    normalizer = PercentileNormalizer(p_low=1.0, p_high=99.5, out_low=0.1, out_high=2.1)
    save_model(build_denoiser(config.model), path, train_config=config, normalizer=normalizer,
               extra={"best_val_loss": 0.0123, "best_epoch": 7})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("sample") / "raw.mat"
    save_volume(Volume(rng.gamma(2.0, 50.0, size=(36, 30, 14)).astype(np.float32), spacing=SPACING), path)
    return path


@pytest.fixture(scope="module")
def package(tiny_model, sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny_bmz.zip"
    result = export_bioimageio(tiny_model, out, name="Tiny test denoiser", authors=["Ada Lovelace"], sample=sample)
    with zipfile.ZipFile(out) as archive:
        description = yaml.safe_load(archive.read("rdf.yaml"))
    return result, description


def read_npy(path, member):
    with zipfile.ZipFile(path) as archive, archive.open(member) as handle:
        return np.load(handle)


def test_the_zip_holds_every_file_the_rdf_names_with_its_sha256(package):
    import hashlib

    result, description = package
    named = [description["documentation"], *description["covers"]]
    named += [a["source"] for a in description["attachments"]]
    for tensor in (*description["inputs"], *description["outputs"]):
        named += [tensor["test_tensor"]["source"], tensor["sample_tensor"]["source"]]
    named += [entry["source"] for entry in description["weights"].values()]
    with zipfile.ZipFile(result.path) as archive:
        members = set(archive.namelist())
        assert set(named) | {"rdf.yaml"} == members
        digests = {name: hashlib.sha256(archive.read(name)).hexdigest() for name in members}
    entries = [*description["attachments"], *description["weights"].values()]
    for tensor in (*description["inputs"], *description["outputs"]):
        entries += [tensor["test_tensor"], tensor["sample_tensor"]]
    for entry in entries:
        assert digests[entry["source"]] == entry["sha256"], entry["source"]


def test_rdf_describes_axes_normalisation_voxel_size_and_provenance(package, tiny_model):
    _, description = package
    assert description["format_version"] == rdf.FORMAT_VERSION and description["type"] == "model"
    (raw,) = description["inputs"]
    space = [axis for axis in raw["axes"] if axis["type"] == "space"]
    assert [axis["id"] for axis in space] == ["y", "x", "z"]
    assert [axis["scale"] for axis in space] == list(SPACING)  # the sample's: the model file records none
    assert all(axis["size"] == {"min": 2, "step": 2} for axis in space)  # a depth-2 U-Net pools once
    (scale_range,) = raw["preprocessing"]
    assert scale_range["id"] == "scale_range"
    assert scale_range["kwargs"]["min_percentile"] == 1.0 and scale_range["kwargs"]["max_percentile"] == 99.5
    (scale_linear,) = description["outputs"][0]["postprocessing"]
    assert scale_linear == {"id": "scale_linear", "kwargs": {"gain": 2.0, "offset": 0.1}}
    assert "tensorflow_saved_model_bundle" in description["weights"]
    assert description["weights"]["tensorflow_saved_model_bundle"].get("parent") is None  # the original weights
    if has("tf2onnx") and has("onnx"):
        assert description["weights"]["onnx"]["parent"] == "tensorflow_saved_model_bundle"
    else:
        assert any(note.startswith("no ONNX copy") for note in package[0].notes)
    assert "voxelstudio_model.keras" in [a["source"] for a in description["attachments"]]
    config = description["config"]["voxelstudio"]
    assert config["train_config"]["model"]["filters"] == 2
    assert config["version"] and config["voxel_size_source"].startswith("the test sample")
    with zipfile.ZipFile(package[0].path) as archive:
        provenance = json.loads(archive.read("voxelstudio_provenance.json"))
        readme = archive.read("README.md").decode()
    assert provenance["model_metadata"]["normalizer"]["p_high"] == 99.5
    assert "0.0123" in readme and "1 and 99.5 percentiles" in readme and "y=0.2 x=0.2 z=0.5" in readme


def test_test_output_is_our_prediction_of_the_test_input(package, tiny_model):
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model

    result, _ = package
    test_input = read_npy(result.path, "test_input.npy")
    test_output = read_npy(result.path, "test_output.npy")
    assert test_input.shape == test_output.shape == (1, 36, 30, 14, 1)
    expected, _, _ = predict_volume(load_model(tiny_model), test_input[0, ..., 0])
    np.testing.assert_allclose(test_output[0, ..., 0], expected, rtol=1e-5, atol=1e-6)
    assert float(np.std(test_output)) > 0


@pytest.mark.skipif(not has("bioimageio.spec"), reason="bioimageio.spec is not installed (it judges the tolerance)")
def test_a_model_whose_output_stays_below_0_1_exports_with_a_tolerance_scaled_to_it(sample, tmp_path):
    from voxelstudio.ml.config import TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.persistence import save_model

    config = TrainConfig.from_dict(TINY)
    dim = tmp_path / "dim.keras"  # outputs in [0, 0.03]: the spec's default 1e-3 would exceed 1 % of their maximum
    save_model(build_denoiser(config.model), dim, train_config=config,
               normalizer=PercentileNormalizer(p_low=1.0, p_high=99.5, out_low=0.0, out_high=0.03))  # fmt: skip
    result = export_bioimageio(dim, tmp_path / "dim.zip", sample=sample)
    assert result.validated_with is not None
    with zipfile.ZipFile(result.path) as archive:
        (tolerance,) = yaml.safe_load(archive.read("rdf.yaml"))["config"]["bioimageio"]["reproducibility_tolerance"]
    largest = max(float(np.max(read_npy(result.path, "test_output.npy"))), 0.0)
    assert largest < 0.1 and tolerance["absolute_tolerance"] == pytest.approx(1e-3 * largest)


def test_the_voxel_size_is_the_option_else_the_adaptation_record_else_the_samples() -> None:
    from voxelstudio.tasks.bioimageio_export import _voxel_size

    adapted = {"extra": {"adaptation": {"measured_bead": {"spacing_um": [0.1, 0.1, 0.3]}}}}
    sample = Volume(np.zeros((4, 4, 4), np.float32), SPACING, name="sample")
    assert _voxel_size((0.2, 0.2, 0.4), adapted, sample) == ((0.2, 0.2, 0.4), "given at export")
    spacing, source = _voxel_size(None, adapted, sample)
    assert spacing == (0.1, 0.1, 0.3) and source.startswith("recorded in the model file")
    assert _voxel_size(None, {"extra": {"best_epoch": 7}}, sample)[0] == SPACING
    with pytest.raises(ValueError, match="sample\\) has none; give --voxel-size"):  # not 1 µm stated as fact
        _voxel_size(None, {}, sample.replace(spacing=(1.0, 1.0, 1.0)))


def test_denoise_reads_the_package_back_and_reproduces_the_test_output(package, tmp_path):
    from voxelstudio.cli import main

    result, _ = package
    with zipfile.ZipFile(result.path) as archive:
        archive.extract("sample_input.tif", tmp_path)
    assert load_volume(tmp_path / "sample_input.tif").spacing == pytest.approx(SPACING)
    code = main(["denoise", str(tmp_path / "sample_input.tif"), "--model", str(result.path), "--format", "npy",
                 "--out-dir", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert code == 0
    denoised = np.load(tmp_path / "out" / "sample_input.npy")
    np.testing.assert_allclose(denoised, read_npy(result.path, "test_output.npy")[0, ..., 0], rtol=1e-5, atol=1e-6)


def normalised(test_input: np.ndarray, description: dict) -> np.ndarray:
    """The rdf's scale_range preprocessing, as a consumer applies it."""
    kwargs = description["inputs"][0]["preprocessing"][0]["kwargs"]
    low, high = np.percentile(test_input, [kwargs["min_percentile"], kwargs["max_percentile"]])
    return ((test_input - low) / (high - low + kwargs["eps"])).astype(np.float32)


def postprocessed(output: np.ndarray, description: dict) -> np.ndarray:
    kwargs = description["outputs"][0]["postprocessing"][0]["kwargs"]
    return output * kwargs["gain"] + kwargs["offset"]


def test_the_saved_model_alone_reproduces_the_test_output(package, tmp_path):
    import tensorflow as tf

    result, description = package
    with zipfile.ZipFile(result.path) as archive:
        archive.extract("tf_saved_model.zip", tmp_path)
    with zipfile.ZipFile(tmp_path / "tf_saved_model.zip") as archive:
        archive.extractall(tmp_path / "saved_model")
    serve = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    x = normalised(read_npy(result.path, "test_input.npy"), description)
    out = postprocessed(serve(raw=tf.constant(x))["denoised"].numpy(), description)
    np.testing.assert_allclose(out, read_npy(result.path, "test_output.npy"), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not has("onnxruntime"), reason="onnxruntime not installed (runs the ONNX copy)")
def test_the_onnx_copy_alone_reproduces_the_test_output(package):
    import onnxruntime

    result, description = package
    if "onnx" not in description["weights"]:
        pytest.skip("no ONNX copy in this package (tf2onnx not installed)")
    with zipfile.ZipFile(result.path) as archive:
        session = onnxruntime.InferenceSession(archive.read("weights.onnx"))
    x = normalised(read_npy(result.path, "test_input.npy"), description)
    out = postprocessed(session.run(None, {session.get_inputs()[0].name: x})[0], description)
    np.testing.assert_allclose(out, read_npy(result.path, "test_output.npy"), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not has("bioimageio.spec"), reason="bioimageio.spec not installed (pip install bioimageio.spec)")
def test_bioimageio_spec_validates_the_package(package):
    from bioimageio.spec import load_description

    result, _ = package
    assert result.validated_with is not None and result.validated_with.startswith("bioimageio.spec")
    summary = load_description(result.path, perform_io_checks=True).validation_summary
    assert summary.status in ("valid-format", "passed"), summary.details


@pytest.mark.skipif(not has("bioimageio.core"), reason="bioimageio.core not installed (it runs the weights)")
def test_bioimageio_core_reproduces_the_test_output_from_every_weights_format(package, tmp_path, monkeypatch):
    from bioimageio.core import test_model

    monkeypatch.chdir(tmp_path)  # bioimageio.core unzips the SavedModel into the working folder

    summary = test_model(package[0].path)
    failed = [(d.name, [e.msg[:200] for e in d.errors]) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed


def test_without_a_saved_model_the_keras_file_is_the_weights_and_still_reads_back(
    tiny_model, sample, tmp_path, monkeypatch
):
    from voxelstudio.ml import bioimageio
    from voxelstudio.ml.persistence import load_model

    monkeypatch.setattr(bioimageio, "export_saved_model", lambda *args, **kwargs: "no exporter on this backend")
    out = tmp_path / "keras_only.zip"
    result = export_bioimageio(tiny_model, out, sample=sample)
    assert result.weights == ("keras_v3",)
    assert result.notes[0].startswith("no TensorFlow SavedModel: no exporter on this backend")
    with zipfile.ZipFile(out) as archive:
        description = yaml.safe_load(archive.read("rdf.yaml"))
    entry = description["weights"]["keras_v3"]
    assert entry["source"] == "voxelstudio_model.keras" and entry["backend"][0] == "tensorflow"
    assert [a["source"] for a in description["attachments"]] == ["voxelstudio_provenance.json"]
    loaded = load_model(out)
    assert loaded.train_config.model.filters == 2 and loaded.normalizer.p_high == 99.5


@pytest.mark.skipif(not all(has(m) for m in ("tf2onnx", "onnx", "onnxruntime")), reason="no ONNX exporter here")
def test_an_onnx_copy_that_disagrees_with_keras_is_left_out(tiny_model, sample, tmp_path, monkeypatch):
    from voxelstudio.ml import bioimageio

    monkeypatch.setattr(bioimageio, "CHECK_ATOL", -1.0)  # nothing agrees closely enough
    result = export_bioimageio(tiny_model, tmp_path / "no_onnx.zip", sample=sample, validate=False)
    assert result.weights == ("tensorflow_saved_model_bundle",)
    assert result.notes[0].startswith("no ONNX copy: the ONNX copy disagrees with Keras by up to")
    with zipfile.ZipFile(result.path) as archive:
        assert "weights.onnx" not in archive.namelist()


def test_a_package_without_a_voxelstudio_model_is_refused_in_one_line(tmp_path):
    from voxelstudio.core.errors import ModelError
    from voxelstudio.ml.persistence import load_model

    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("rdf.yaml", yaml.safe_dump({"type": "model", "weights": {"onnx": {"source": "w.onnx"}}}))
    with pytest.raises(ModelError, match="only packages made by voxelstudio") as caught:
        load_model(foreign)
    assert "\n" not in str(caught.value) and str(foreign) in str(caught.value)
    for odd in ({"weights": 5}, {"weights": ["a", "b"]}, {"attachments": 5}):  # tracebacks, as a bad rdf.yaml
        with zipfile.ZipFile(foreign, "w") as archive:
            archive.writestr("rdf.yaml", yaml.safe_dump({"type": "model", **odd}))
        with pytest.raises(ModelError, match="only packages made by voxelstudio"):
            load_model(foreign)


def test_test_crop_keeps_multiples_of_the_size_step_and_refuses_too_small_volumes():
    volume = np.arange(100 * 70 * 9, dtype=np.float32).reshape(100, 70, 9)
    assert crop_for_test(volume, (4, 4, 4), "v").shape == (64, 64, 8)  # at most 64 x 64 x 32
    with pytest.raises(VolumeReadError, match=r"small.tif: shape \(3, 40, 40\) is smaller than the model's size step"):
        crop_for_test(np.zeros((3, 40, 40), np.float32), (4, 4, 4), "small.tif")
    with pytest.raises(VolumeReadError, match=r"zeros.mat: the sample's centre \(64, 64, 8\) is constant"):
        crop_for_test(np.zeros_like(volume), (4, 4, 4), "zeros.mat")


def test_test_crop_of_a_lazy_volume_reads_only_the_crop_as_float32():
    import dask.array as da

    values = np.arange(100 * 80 * 40, dtype=np.uint16).reshape(100, 80, 40)
    crop = crop_for_test(da.from_array(values, chunks=(10, 10, 10)), (4, 4, 4), "big.ome.zarr")
    assert isinstance(crop, np.ndarray) and crop.dtype == np.float32 and crop.shape == (64, 64, 32)
    np.testing.assert_array_equal(crop, values[18:82, 8:72, 4:36])


def test_cover_is_an_rgb_picture_twice_as_wide_as_high():
    rng = np.random.default_rng(1)
    picture = cover_image(rng.random((30, 30, 5)), rng.random((30, 30, 5)))
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    assert picture.shape[1] == 2 * picture.shape[0] >= 512


def test_identity_normalisation_has_no_postprocessing():
    assert rdf.postprocessing(PercentileNormalizer()) == []
    assert rdf.preprocessing(PercentileNormalizer())[0]["kwargs"]["axes"] == ["y", "x", "z"]


def test_without_bioimageio_spec_nothing_is_checked(tmp_path, monkeypatch):
    from voxelstudio.tasks import bioimageio_check

    monkeypatch.setattr(bioimageio_check, "spec_available", lambda: False)
    assert bioimageio_check.validate_rdf(tmp_path / "rdf.yaml", "out.zip") is None


@pytest.mark.skipif(not has("bioimageio.spec"), reason="bioimageio.spec not installed (pip install bioimageio.spec)")
def test_an_rdf_the_spec_rejects_is_one_line_naming_the_package_and_the_field(tmp_path):
    from voxelstudio.core.errors import VolumeWriteError
    from voxelstudio.tasks.bioimageio_check import validate_rdf

    rdf_path = tmp_path / "rdf.yaml"
    rdf_path.write_text(yaml.safe_dump({"format_version": rdf.FORMAT_VERSION, "type": "model", "name": "x"}))
    with pytest.raises(VolumeWriteError, match=r"^out\.zip: bioimageio\.spec \S+ rejects the package \(") as caught:
        validate_rdf(rdf_path, "out.zip")
    assert "\n" not in str(caught.value)


def test_a_model_that_takes_the_voxel_size_is_refused_before_anything_is_written(tmp_path):
    from tiny_denoisers import tiny_model as conditioned_model  # beside this file

    from voxelstudio.core.errors import ModelError

    model = conditioned_model(tmp_path, "unet", spacing_input=True)
    with pytest.raises(ModelError, match=r"unet-spacing\.keras: takes the voxel size as a second input"):
        export_bioimageio(model, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_a_model_with_an_input_shift_exports_its_network_and_says_what_is_left_out(sample, tmp_path):
    from dataclasses import replace

    from voxelstudio.ml.config import TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model, save_model

    config = TrainConfig.from_dict(TINY)
    path = save_model(build_denoiser(config.model), tmp_path / "adapted.keras", train_config=config,
                      normalizer=PercentileNormalizer(), input_shift=(0.0, 0.0, -0.62))  # fmt: skip
    result = export_bioimageio(path, tmp_path / "adapted.zip", sample=sample, validate=False)
    assert any("moves scans by (y, x, z) +0.00, +0.00, -0.62 voxels" in note for note in result.notes)
    test_input = read_npy(result.path, "test_input.npy")[0, ..., 0]
    network = replace(load_model(path), input_shift=(0.0, 0.0, 0.0))
    own = predict_volume(network, test_input)[0]
    np.testing.assert_allclose(read_npy(result.path, "test_output.npy")[0, ..., 0], own, rtol=1e-5, atol=1e-6)
    assert np.abs(predict_volume(load_model(path), test_input)[0] - own).max() > 1e-3  # what VoxelStudio gives
