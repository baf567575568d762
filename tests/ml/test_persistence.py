from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import voxelstudio
from voxelstudio.core.errors import ModelError
from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.core.provenance import model_record
from voxelstudio.ml.config import ARCHITECTURES, DenoiserConfig, TrainConfig
from voxelstudio.ml.denoisers import build_denoiser, receptive_field, required_multiple
from voxelstudio.ml.persistence import (
    CODE_MESSAGE,
    FLIPPED_SHIFT_KEY,
    INPUT_SHIFT_KEY,
    METADATA_MEMBER,
    OPTIMIZER_MEMBER,
    SHIFT_SPACING_KEY,
    load_model,
    restore_optimizer_state,
    save_model,
)

NORMALIZER = PercentileNormalizer(p_low=1.0, p_high=99.5, out_low=0.0, out_high=2.5)
SMALL = {"simple": {"kernel": (3, 3, 3)}, "unet": {"depth": 2}, "resunet": {"depth": 2}}


def _config(arch: str) -> TrainConfig:
    return TrainConfig(model=DenoiserConfig.for_arch(arch, filters=2, **SMALL[arch]), epochs=3, seed=7)


def _volume(shape=(1, 9, 11, 5, 1)) -> np.ndarray:
    return np.random.default_rng(3).random(shape, dtype=np.float32)


@pytest.fixture(scope="module")
def saved_unet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, keras.Model, TrainConfig]:
    config = _config("unet")
    model = build_denoiser(config.model)
    path = save_model(model, tmp_path_factory.mktemp("m") / "unet.keras", train_config=config, normalizer=NORMALIZER)
    return path, model, config


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_round_trip_predicts_identically(tmp_path: Path, arch: str) -> None:
    config = _config(arch)
    model = build_denoiser(config.model)
    path = save_model(model, tmp_path / "sub" / "m.keras", train_config=config, normalizer=NORMALIZER, extra={"a": 1})
    loaded = load_model(path)
    x = _volume()
    np.testing.assert_array_equal(loaded.model.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.train_config == config
    assert loaded.normalizer == NORMALIZER
    assert loaded.metadata["extra"] == {"a": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.keras"]  # no temporary files left


def test_metadata_and_hash(saved_unet) -> None:
    path, _, config = saved_unet
    loaded = load_model(path)
    meta = loaded.metadata
    assert meta["voxelstudio_version"] == voxelstudio.__version__
    assert meta["receptive_field"] == list(receptive_field(config.model))
    assert meta["required_multiple"] == list(required_multiple(config.model))
    assert meta["extra"] == {}
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_saving_again_replaces_the_file(tmp_path: Path) -> None:
    config = _config("simple")
    path = tmp_path / "m.keras"
    save_model(build_denoiser(config.model), path, train_config=config, normalizer=NORMALIZER)
    model = build_denoiser(config.model)
    save_model(model, path, train_config=config, normalizer=PercentileNormalizer(), extra={"epoch": 2})
    loaded = load_model(path)
    assert loaded.metadata["extra"] == {"epoch": 2} and loaded.normalizer == PercentileNormalizer()
    x = _volume()
    np.testing.assert_array_equal(loaded.model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_arguments_leave_no_file(tmp_path: Path) -> None:
    config = _config("simple")
    model = build_denoiser(config.model)
    with pytest.raises(ValueError, match=r"\.keras"):
        save_model(model, tmp_path / "m.h5", train_config=config, normalizer=NORMALIZER)
    with pytest.raises(ValueError, match="JSON"):
        save_model(model, tmp_path / "m.keras", train_config=config, normalizer=NORMALIZER, extra={"x": object()})
    assert list(tmp_path.iterdir()) == []


def _lambda_model() -> keras.Model:
    inputs = keras.Input((None, None, None, 1))
    outputs = keras.layers.Conv3D(1, 1)(keras.layers.Lambda(lambda t: t * 2.0 + 1.0)(inputs))
    return keras.Model(inputs, outputs)


def test_lambda_layer_is_refused_unless_trusted(tmp_path: Path) -> None:
    model = _lambda_model()
    path = save_model(model, tmp_path / "code.keras", train_config=_config("simple"), normalizer=NORMALIZER)
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert str(err.value) == f"{path}: {CODE_MESSAGE}"
    loaded = load_model(path, trusted=True)
    x = _volume()
    np.testing.assert_allclose(loaded.model.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_plain_keras_file_loads_with_default_metadata(tmp_path: Path) -> None:
    model = build_denoiser(DenoiserConfig.for_arch("simple", filters=2, kernel=(3, 3, 3)))
    path = tmp_path / "plain.keras"
    keras.saving.save_model(model, path)
    loaded = load_model(path)
    assert loaded.train_config is None and loaded.metadata == {}
    assert loaded.normalizer == PercentileNormalizer()


def _single_line_model_error(path: Path, match: str) -> str:
    with pytest.raises(ModelError, match=match) as err:
        load_model(path)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{path}: ")
    return str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    _single_line_model_error(tmp_path / "nope.keras", "not found")
    (tmp_path / "folder.keras").mkdir()
    _single_line_model_error(tmp_path / "folder.keras", "is a folder, not a model file")


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "junk.keras"
    path.write_bytes(b"this is not a model\n" * 50)
    _single_line_model_error(path, "not a readable .keras")


def test_truncated_file(tmp_path: Path, saved_unet) -> None:
    data = saved_unet[0].read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: len(data) // 2])
    _single_line_model_error(path, "not a readable .keras")


def test_corrupt_member(tmp_path: Path, saved_unet) -> None:
    data = bytearray(saved_unet[0].read_bytes())
    with zipfile.ZipFile(saved_unet[0]) as archive:
        info = archive.getinfo("model.weights.h5")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[start : start + 64] = bytes(64)
    path = tmp_path / "bad.keras"
    path.write_bytes(bytes(data))
    _single_line_model_error(path, "corrupt")


def test_zip_without_keras_config(tmp_path: Path) -> None:
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(METADATA_MEMBER, "{}")
    _single_line_model_error(path, "no config.json")


@pytest.mark.parametrize("member", ["config.json", METADATA_MEMBER])
def test_a_member_that_is_not_a_json_object(tmp_path: Path, saved_unet, member: str) -> None:
    path = tmp_path / "listed.keras"
    _rewrite_member(saved_unet[0], path, member, lambda data: b"[1, 2]")
    _single_line_model_error(path, f"damaged model file \\({member} holds a list, not an object\\)")


@pytest.mark.parametrize("normalizer", [None, "percentile", [1, 99]])
def test_metadata_members_of_the_wrong_type_are_one_line(tmp_path: Path, saved_unet, normalizer) -> None:
    """A ``"normalizer": null`` escaped as an AttributeError traceback."""
    path = tmp_path / "edited.keras"

    def edit(data: bytes) -> bytes:
        return json.dumps({**json.loads(data), "normalizer": normalizer}).encode()

    _rewrite_member(saved_unet[0], path, METADATA_MEMBER, edit)
    _single_line_model_error(path, "invalid VoxelStudio metadata")


def test_a_classifier_is_not_taken_for_a_denoiser(tmp_path: Path, saved_unet) -> None:
    path = tmp_path / "classifier.keras"
    _rewrite_member(saved_unet[0], path, METADATA_MEMBER, lambda data: b'{"format": "voxelstudio-classifier"}')
    _single_line_model_error(path, "is a voxel classifier, not a denoiser")


@pytest.mark.parametrize("input_shape", [(None, None, 1), (None, None, None, 2)])
def test_model_of_the_wrong_shape(tmp_path: Path, input_shape: tuple) -> None:
    inputs = keras.Input(input_shape)
    conv = keras.layers.Conv2D if len(input_shape) == 3 else keras.layers.Conv3D
    path = tmp_path / "wrong.keras"
    keras.saving.save_model(keras.Model(inputs, conv(1, 1)(inputs)), path)
    _single_line_model_error(path, "must be 5-D")


def _rewrite_member(source: Path, target: Path, name: str, edit) -> None:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            new.writestr(item, edit(data) if item.filename == name else data)


def test_a_file_from_a_newer_keras_names_both_versions(tmp_path: Path, saved_unet) -> None:
    def from_the_future(data: bytes) -> bytes:
        config = json.loads(data)  # a layer class this Keras does not have
        layer = config["config"]["layers"][1]
        layer.update(module="keras.layers", class_name="LayerOfKeras99", registered_name=None)
        return json.dumps(config).encode()

    path = tmp_path / "future.keras"
    _rewrite_member(saved_unet[0], tmp_path / "step.keras", "config.json", from_the_future)
    _rewrite_member(tmp_path / "step.keras", path, METADATA_MEMBER,
                    lambda data: json.dumps({**json.loads(data), "keras_version": "99.1.0"}).encode())  # fmt: skip
    message = _single_line_model_error(path, "was saved with Keras 99.1.0, newer than this Keras")
    assert keras.__version__ in message and "upgrade Keras" in message


def test_a_file_of_a_newer_voxelstudio_format_is_refused_with_what_to_do(tmp_path: Path, saved_unet) -> None:
    from model_files import with_metadata

    newer = with_metadata(saved_unet[0], tmp_path / "newer.keras", format_version=99, voxelstudio_version="9.0")
    message = _single_line_model_error(newer, r"was written by a newer VoxelStudio \(9.0, model format 99; this one")
    assert "upgrade VoxelStudio" in message
    _single_line_model_error(with_metadata(saved_unet[0], tmp_path / "odd.keras", format_version="1"), "not a positive")
    assert load_model(with_metadata(saved_unet[0], tmp_path / "unversioned.keras", format_version=None)).model


def test_mixed_precision_models_are_saved_computing_in_float32(tmp_path: Path) -> None:
    config = _config("unet")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_denoiser(config.model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert any(layer.dtype_policy.name == "mixed_bfloat16" for layer in model.layers)
    loaded = load_model(save_model(model, tmp_path / "m.keras", train_config=config, normalizer=NORMALIZER)).model
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    for ours, theirs in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _compiled(config: TrainConfig, learning_rate: float = 1e-3) -> keras.Model:
    model = build_denoiser(config.model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def test_checkpoints_carry_the_optimizer_state_as_arrays(tmp_path: Path) -> None:
    config = _config("unet")
    model = _compiled(config)
    model.train_on_batch(_volume((1, 8, 8, 4, 1)), _volume((1, 8, 8, 4, 1)))
    best = save_model(model, tmp_path / "best.keras", train_config=config, normalizer=NORMALIZER)
    last = save_model(model, tmp_path / "last.keras", train_config=config, normalizer=NORMALIZER, optimizer_state=True)
    with zipfile.ZipFile(best) as archive:
        assert OPTIMIZER_MEMBER not in archive.namelist()
        assert not json.loads(archive.read("config.json")).get("compile_config")  # nothing backend-specific
    resumed = _compiled(config)
    assert restore_optimizer_state(resumed, last) is True
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 1
    for ours, theirs in zip(resumed.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))


def test_optimizer_state_that_does_not_fit_restarts_with_a_warning(tmp_path: Path) -> None:
    config = _config("unet")
    model = _compiled(config)
    model.train_on_batch(_volume((1, 8, 8, 4, 1)), _volume((1, 8, 8, 4, 1)))
    last = save_model(model, tmp_path / "last.keras", train_config=config, normalizer=NORMALIZER, optimizer_state=True)
    other = build_denoiser(config.model)
    other.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss="mse")
    with pytest.warns(UserWarning, match="optimizer state not restored .* the optimizer restarts"):
        assert restore_optimizer_state(other, last) is False
    assert int(keras.ops.convert_to_numpy(other.optimizer.iterations)) == 0


def test_an_input_shift_is_saved_only_when_there_is_one_and_loaded_back(tmp_path: Path, saved_unet) -> None:
    _, model, config = saved_unet
    shifted = save_model(model, tmp_path / "s.keras", train_config=config, normalizer=NORMALIZER,
                         input_shift=(0.0, 0.0, -0.62))  # fmt: skip
    assert load_model(shifted).input_shift == (0.0, 0.0, -0.62)
    assert load_model(shifted).metadata[INPUT_SHIFT_KEY] == [0.0, 0.0, -0.62]
    plain = save_model(model, tmp_path / "p.keras", train_config=config, normalizer=NORMALIZER, input_shift=(0, 0, 0))
    assert INPUT_SHIFT_KEY not in load_model(plain).metadata
    assert load_model(plain).input_shift == (0.0, 0.0, 0.0)
    assert model_record(load_model(shifted))["input_shift_vox"] == [0.0, 0.0, -0.62]  # in a prediction's provenance
    assert "input_shift_vox" not in model_record(load_model(plain))


def test_the_z_flipped_views_shift_is_kept_where_it_differs(tmp_path: Path, saved_unet) -> None:
    _, model, config = saved_unet
    both = save_model(model, tmp_path / "b.keras", train_config=config, normalizer=NORMALIZER,
                      input_shift=(0.0, 0.0, -0.62), flipped_input_shift=(0.0, 0.0, -1.3))  # fmt: skip
    loaded = load_model(both)
    assert (loaded.shift_for(False), loaded.shift_for(True)) == ((0.0, 0.0, -0.62), (0.0, 0.0, -1.3))
    assert model_record(loaded)["flipped_input_shift_vox"] == [0.0, 0.0, -1.3]
    same = save_model(model, tmp_path / "s.keras", train_config=config, normalizer=NORMALIZER,
                      input_shift=(0.0, 0.0, -0.62), flipped_input_shift=(0.0, 0.0, -0.62))  # fmt: skip
    assert FLIPPED_SHIFT_KEY not in load_model(same).metadata
    assert load_model(same).shift_for(True) == (0.0, 0.0, -0.62)
    only_flipped = save_model(model, tmp_path / "f.keras", train_config=config, normalizer=NORMALIZER,
                              flipped_input_shift=(0.0, 0.0, 0.5))  # fmt: skip
    assert load_model(only_flipped).shift_for(False) == (0.0, 0.0, 0.0)
    assert load_model(only_flipped).shift_for(True) == (0.0, 0.0, 0.5)


def test_a_shift_measured_on_one_voxel_size_moves_scans_of_another_by_as_many_um(tmp_path: Path, saved_unet) -> None:
    _, model, config = saved_unet
    path = save_model(model, tmp_path / "m.keras", train_config=config, normalizer=NORMALIZER,
                      input_shift=(0.0, 0.2, -0.6), flipped_input_shift=(0.0, 0.0, -1.2),
                      shift_spacing=(0.1, 0.1, 0.1))  # fmt: skip
    loaded = load_model(path)
    assert loaded.shift_spacing == (0.1, 0.1, 0.1) and loaded.metadata[SHIFT_SPACING_KEY] == [0.1, 0.1, 0.1]
    coarse = loaded.for_spacing((0.1, 0.2, 0.3))  # planes 3x, columns 2x as far apart
    assert coarse.input_shift == pytest.approx((0.0, 0.1, -0.2)) and coarse.shift_for(True) == pytest.approx(
        (0.0, 0.0, -0.4)
    )
    assert coarse.shift_spacing == (0.1, 0.2, 0.3) and coarse.model is loaded.model
    assert model_record(coarse)["input_shift_vox"] == pytest.approx([0.0, 0.1, -0.2])  # what the scan was moved by
    assert loaded.for_spacing(None) is loaded  # a scan of unknown voxel size: the shift in voxels, as measured
    unknown = save_model(model, tmp_path / "u.keras", train_config=config, normalizer=NORMALIZER,
                         input_shift=(0.0, 0.0, -0.6))  # fmt: skip
    assert load_model(unknown).for_spacing((0.1, 0.1, 0.3)).input_shift == (0.0, 0.0, -0.6)
    none = save_model(model, tmp_path / "n.keras", train_config=config, normalizer=NORMALIZER,
                      shift_spacing=(0.1, 0.1, 0.1))  # fmt: skip
    assert SHIFT_SPACING_KEY not in load_model(none).metadata  # no shift, nothing to scale


@pytest.mark.parametrize("value", [[0.1, 0.1], [0.1, 0.0, 0.2], [0.1, 0.1, float("inf")], "0.1"])
def test_a_bad_shift_voxel_size_is_one_line(tmp_path: Path, saved_unet, value) -> None:
    path = tmp_path / "edited.keras"

    def edit(data: bytes) -> bytes:
        return json.dumps({**json.loads(data), SHIFT_SPACING_KEY: value}).encode()

    _rewrite_member(saved_unet[0], path, METADATA_MEMBER, edit)
    _single_line_model_error(path, "invalid VoxelStudio metadata")


@pytest.mark.parametrize("key", ["input_shift_vox", "flipped_input_shift_vox"])
@pytest.mark.parametrize("value", [[0.5, 0.5], "up", [0.0, 0.0, None], [0.0, 0.0, float("nan")]])
def test_a_bad_input_shift_is_one_line(tmp_path: Path, saved_unet, key, value) -> None:
    path = tmp_path / "edited.keras"

    def edit(data: bytes) -> bytes:
        return json.dumps({**json.loads(data), key: value}).encode()

    _rewrite_member(saved_unet[0], path, METADATA_MEMBER, edit)
    _single_line_model_error(path, "invalid VoxelStudio metadata")
