"""Classifier builders (layer structure, parameter counts by hand formula), stochastic depth, configs,
save/load round-trip and rotation-voting prediction."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy
from model_files import with_metadata

from voxelstudio.core.errors import ModelError
from voxelstudio.ml.classifier_blocks import InsideAveragePooling3D, StochasticDepth, keep_probabilities
from voxelstudio.ml.classifier_config import ClassifierConfig, ClassifierTrainConfig
from voxelstudio.ml.classifiers import (
    build_classifier,
    load_classifier,
    predict_probabilities,
    save_classifier,
    scaled_channels,
)
from voxelstudio.ml.persistence import METADATA_MEMBER
from voxelstudio.ml.voxel_pose import POSE_VERSION


def voxnet_parameters(size: int, n_classes: int, width: float = 1.0) -> int:
    """VoxNet's parameters by hand: conv 5^3/2 valid, conv 3^3 valid, pool 2, Dense 128, Dense n_classes."""
    filters, hidden = round(32 * width), round(128 * width)
    after_conv1 = (size - 5) // 2 + 1
    after_pool = (after_conv1 - 2) // 2
    conv1 = 5**3 * 1 * filters + filters
    conv2 = 3**3 * filters * filters + filters
    fc1 = after_pool**3 * filters * hidden + hidden
    return conv1 + conv2 + fc1 + hidden * n_classes + n_classes


def vrn_parameters(width: float, n_classes: int, blocks: int = 3) -> int:
    """VRN's parameters by hand (batch norm: 4 values per channel; convs followed by a norm have no bias)."""
    channels = [scaled_channels(c, width) for c in (32, 64, 128, 256, 512)]

    def block(c: int) -> int:
        q, h = c // 4, c // 2
        branch_a = c * q + 4 * q + 27 * q * q + 4 * q + q * h + h
        branch_b = 27 * c * q + 4 * q + 27 * q * (c - h) + (c - h)
        return 4 * c + branch_a + branch_b

    def down(c: int, f: int) -> int:
        q = f // 4
        return 4 * c + (27 * c * q + 4 * q) + (c * q + 4 * q) + 2 * (27 * c * q + q + 4 * q)

    total = 27 * channels[0] + channels[0]
    for stage in range(4):
        total += blocks * block(channels[stage]) + down(channels[stage], channels[stage + 1])
    top, hidden = channels[4], scaled_channels(512, width)
    total += 27 * top * top + 4 * top  # final residual conv + its norm
    return total + 4 * top + top * hidden + hidden + 4 * hidden + hidden * n_classes + n_classes


def layer_kinds(model: keras.Model) -> Counter:
    return Counter(type(layer).__name__ for layer in model.layers)


def test_voxnet_at_32_cubed_has_the_papers_092_million_parameters() -> None:
    model = build_classifier(ClassifierConfig.for_arch("voxnet"))
    assert model.count_params() == voxnet_parameters(32, 10) == 917_866


@pytest.mark.parametrize(("size", "n_classes", "width"), [(16, 3, 0.25), (20, 5, 0.5), (32, 40, 0.125)])
def test_voxnet_layers_and_parameters(size: int, n_classes: int, width: float) -> None:
    cfg = ClassifierConfig.for_arch("voxnet", n_classes=n_classes, input_shape=(size,) * 3, width=width)
    model = build_classifier(cfg)
    assert model.count_params() == voxnet_parameters(size, n_classes, width)
    kinds = layer_kinds(model)
    assert (kinds["Conv3D"], kinds["LeakyReLU"], kinds["MaxPooling3D"], kinds["Dense"], kinds["Dropout"]) == (
        2, 2, 1, 2, 3,
    )  # fmt: skip
    conv1, conv2 = (layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D))
    assert (conv1.kernel_size, conv1.strides, conv1.padding) == ((5, 5, 5), (2, 2, 2), "valid")
    assert (conv2.kernel_size, conv2.strides, conv1.filters) == ((3, 3, 3), (1, 1, 1), round(32 * width))
    assert [round(layer.rate, 3) for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [
        0.2, 0.3, 0.4,
    ]  # fmt: skip
    assert model.get_layer("conv1_lrelu").negative_slope == pytest.approx(0.1)
    assert model.output_shape == (None, n_classes)


@pytest.mark.parametrize("blocks", [1, 3])
def test_vrn_layers_and_parameters_at_tiny_width(blocks: int) -> None:
    cfg = ClassifierConfig.for_arch("vrn", n_classes=3, input_shape=(16, 16, 16), width=0.125, blocks_per_stage=blocks)
    model = build_classifier(cfg)
    assert model.count_params() == vrn_parameters(0.125, 3, blocks)
    kinds = layer_kinds(model)
    residuals = 4 * blocks + 1
    assert kinds["Conv3D"] == 1 + 5 * 4 * blocks + 4 * 4 + 1  # stem, 5 per VRN block, 4 per downsampling, final
    assert (kinds["MaxPooling3D"], kinds["InsideAveragePooling3D"], kinds["GlobalAveragePooling3D"]) == (4, 4, 1)
    assert (kinds["StochasticDepth"], kinds["Add"], kinds["Concatenate"]) == (residuals, residuals, 4 * blocks + 4)
    assert kinds["Dense"] == 2 and kinds["Rescaling"] == 1
    assert [model.get_layer(f"down{i}_concat").output.shape[-1] for i in (1, 2, 3, 4)] == [8, 16, 32, 64]
    assert model.get_layer("stem_conv").filters == 4 and model.get_layer("down4_concat").output.shape[1:4] == (1,) * 3
    keeps = [layer.keep_prob for layer in model.layers if isinstance(layer, StochasticDepth)]
    np.testing.assert_allclose(keeps, np.linspace(1.0, 0.25, residuals + 1)[1:])
    assert all(layer.momentum == 0.9 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert model(np.zeros((2, 16, 16, 16, 1), np.float32), training=False).shape == (2, 3)


def test_full_vrn_parameter_count() -> None:
    model = build_classifier(ClassifierConfig.for_arch("vrn"))
    assert model.count_params() == vrn_parameters(1.0, 10) == 14_121_514


@pytest.mark.parametrize("norm", ["layer", "instance", "group"])
def test_vrn_normalisation_choices(norm: str) -> None:
    cfg = ClassifierConfig.for_arch("vrn", n_classes=2, input_shape=(8, 8, 8), width=0.25, blocks_per_stage=1,
                                    norm=norm, stochastic_depth=False)  # fmt: skip
    model = build_classifier(cfg)
    kinds = layer_kinds(model)
    assert kinds["BatchNormalization"] == 0
    assert kinds["GroupNormalization" if norm != "layer" else "LayerNormalization"] > 0
    assert all(layer.keep_prob == 1.0 for layer in model.layers if isinstance(layer, StochasticDepth))
    y = to_numpy(model(np.random.default_rng(0).random((2, 8, 8, 8, 1), np.float32)))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)


def test_vrn_separable_convolutions_are_depthwise() -> None:
    cfg = ClassifierConfig.for_arch("vrn", n_classes=2, input_shape=(8, 8, 8), width=0.25, blocks_per_stage=1,
                                    separable=True)  # fmt: skip
    model = build_classifier(cfg)
    depthwise = [layer for layer in model.layers if layer.name.endswith("_depthwise")]
    assert len(depthwise) == 4 * 3  # the three 3^3 convs of each VRN block
    assert all(layer.groups == layer.filters > 1 for layer in depthwise)
    plain = build_classifier(ClassifierConfig.for_arch("vrn", n_classes=2, input_shape=(8, 8, 8), width=0.25,
                                                       blocks_per_stage=1))  # fmt: skip
    assert model.count_params() < plain.count_params()


def test_stochastic_depth_drops_whole_samples_while_training_and_is_identity_at_inference() -> None:
    layer = StochasticDepth(0.25, seed=1)
    x = np.ones((4000, 2, 2, 2, 3), np.float32)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    y = to_numpy(layer(x, training=True))
    per_sample = y.reshape(len(y), -1)
    assert np.all((per_sample == 0).all(axis=1) | (per_sample == 4.0).all(axis=1))  # whole branch kept or dropped
    assert per_sample[:, 0].mean() == pytest.approx(1.0, abs=0.1)  # the expectation is unchanged
    assert (per_sample[:, 0] > 0).mean() == pytest.approx(0.25, abs=0.03)
    np.testing.assert_array_equal(to_numpy(StochasticDepth(1.0)(x, training=True)), x)
    clone = StochasticDepth.from_config(layer.get_config())
    assert clone.keep_prob == 0.25
    with pytest.raises(ValueError, match="keep_prob"):
        StochasticDepth(0.0)
    assert keep_probabilities(3, 0.25) == pytest.approx([0.75, 0.5, 0.25])


def test_configs_round_trip_and_validate() -> None:
    cfg = ClassifierTrainConfig.for_arch("vrn", model_overrides={"width": 0.125}, epochs=3, minutes=2.5)
    assert (cfg.learning_rate, cfg.batch_size, cfg.model.dropout) == (0.00126, 50, 0.2)
    assert ClassifierTrainConfig.from_json(cfg.to_json()) == cfg
    voxnet = ClassifierTrainConfig.for_arch("voxnet")
    assert (voxnet.learning_rate, voxnet.batch_size, voxnet.model.dropout) == (0.00151, 150, 0.3)
    for bad, message in [
        ({"arch": "pointnet"}, "unknown classifier"),
        ({"n_classes": 1}, "at least 2 classes"),
        ({"width": 0}, "width"),
        ({"input_shape": (10, 10, 10)}, r"VoxNet needs inputs of at least 11\^3"),
        ({"norm": "weight"}, "normalisation"),
    ]:
        with pytest.raises(ValueError, match=message):
            ClassifierConfig(**bad).validate()
    with pytest.raises(ValueError, match="leave training data"):
        ClassifierTrainConfig(val_fraction=0.5, test_fraction=0.5).validate()
    with pytest.raises(ValueError, match="unknown ClassifierTrainConfig"):
        ClassifierTrainConfig.from_dict({"epoch": 3})


def _tiny(arch: str = "voxnet", n_classes: int = 3) -> ClassifierTrainConfig:
    width = 0.25 if arch == "voxnet" else 0.125
    model = {"n_classes": n_classes, "input_shape": (12, 12, 12), "width": width, "blocks_per_stage": 1}
    return ClassifierTrainConfig.for_arch(arch, model_overrides=model, epochs=2)


@pytest.mark.parametrize("arch", ["voxnet", "vrn"])
def test_save_load_round_trip(tmp_path: Path, arch: str) -> None:
    cfg = _tiny(arch)
    model = build_classifier(cfg.model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = save_classifier(model, tmp_path / "m.keras", classes=("a", "b", "c"), train_config=cfg, extra={"k": 1})
    loaded = load_classifier(path)
    x = np.random.default_rng(0).random((3, 12, 12, 12), np.float32) > 0.7
    x = x.astype(np.float32)[..., None]
    np.testing.assert_allclose(to_numpy(loaded.model(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6)
    assert loaded.classes == ("a", "b", "c") and loaded.train_config == cfg and loaded.config == cfg.model
    assert loaded.input_shape == (12, 12, 12) and loaded.metadata["extra"] == {"k": 1} and len(loaded.sha256) == 64
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights:
        assert "optimizer" not in weights  # the best model ships without Adam's moments
    with pytest.raises(ValueError, match="2 class names for a model with 3 outputs"):
        save_classifier(model, tmp_path / "n.keras", classes=("a", "b"), train_config=cfg)


def test_load_errors_are_one_line_model_errors(tmp_path: Path) -> None:
    cfg = _tiny()
    path = save_classifier(build_classifier(cfg.model), tmp_path / "m.keras", classes=("a", "b", "c"),
                           train_config=cfg)  # fmt: skip
    with pytest.raises(ModelError, match="model file not found"):
        load_classifier(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r"junk\.keras: not a readable"):
        load_classifier(tmp_path / "junk.keras")
    newer = with_metadata(path, tmp_path / "newer.keras", format_version=2)
    with pytest.raises(ModelError, match=r"newer\.keras: was written by a newer VoxelStudio .*model format 2"):
        load_classifier(newer)
    bad = with_metadata(path, tmp_path / "bad.keras", classes=["a", "b"])
    with pytest.raises(ModelError, match="3 outputs but 2 class names"):
        load_classifier(bad)
    text = with_metadata(path, tmp_path / "text.keras", classes="abc")  # was read as three names
    with pytest.raises(ModelError, match="classes must be a list of names, got 'abc'"):
        load_classifier(text)
    denoiser = tmp_path / "denoiser.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(denoiser, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, b'{"format": "voxelstudio-denoiser"}' if item.filename == METADATA_MEMBER else data)
    with pytest.raises(ModelError, match="a denoiser"):
        load_classifier(denoiser)


def test_voting_prediction_is_invariant_to_quarter_turns() -> None:
    model = build_classifier(_tiny(n_classes=4).model)
    x = (np.random.default_rng(2).random((3, 12, 12, 12)) > 0.6).astype(np.uint8)
    turned = np.rot90(x, 1, axes=(1, 2))
    single, single_turned = predict_probabilities(model, x), predict_probabilities(model, turned)
    assert not np.allclose(single, single_turned, atol=1e-4)
    for rotations in (4, 12):
        voted = predict_probabilities(model, x, rotations=rotations, batch_size=8)
        np.testing.assert_allclose(predict_probabilities(model, turned, rotations=rotations), voted, atol=1e-5)
        np.testing.assert_allclose(voted.sum(axis=1), 1.0, atol=1e-5)


def test_vrn_average_pooling_averages_only_voxels_inside_the_volume() -> None:
    """3^3 stride 2 "same" pooling of a 5^3 volume: border windows hang over the edge; their mean is over the voxels
    inside (TensorFlow's rule, which PyTorch's pooling does not follow by itself)."""
    x = np.random.default_rng(0).random((2, 5, 5, 5, 3)).astype(np.float32)
    pooled = to_numpy(InsideAveragePooling3D(pool_size=3, strides=2, padding="same")(x))
    expected = np.empty((2, 3, 3, 3, 3), np.float32)
    for i, j, k in np.ndindex(3, 3, 3):  # TF "same": output 3, total padding 2, one voxel before and after
        window = x[:, max(2 * i - 1, 0) : 2 * i + 2, max(2 * j - 1, 0) : 2 * j + 2, max(2 * k - 1, 0) : 2 * k + 2]
        expected[:, i, j, k] = window.mean(axis=(1, 2, 3))
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)


def test_posed_models_record_the_pose_version_and_unknown_versions_are_refused(tmp_path: Path) -> None:
    posed = _tiny()
    posed = replace(posed, model=replace(posed.model, orientation="any"))
    path = save_classifier(build_classifier(posed.model), tmp_path / "any.keras", classes=("a", "b", "c"),
                           train_config=posed)  # fmt: skip
    assert load_classifier(path).pose_version == POSE_VERSION
    newer = POSE_VERSION + 1
    stale_files = {1: with_metadata(path, tmp_path / "old.keras", pose_version=None),
                   newer: with_metadata(path, tmp_path / "next.keras", pose_version=newer)}  # fmt: skip
    for version, stale in stale_files.items():
        with pytest.raises(ModelError, match=f"{stale.name}: trained on grids posed by pose version {version}, "):
            load_classifier(stale)
    older = load_classifier(with_metadata(path, tmp_path / "v2.keras", pose_version=2))
    assert older.pose_version == 2  # still computed: such a model is given grids posed as it was trained
    again = save_classifier(older.model, tmp_path / "v2b.keras", classes=older.classes, train_config=posed,
                            pose_version=older.pose_version)  # fmt: skip
    assert load_classifier(again).pose_version == 2
    upright = _tiny()  # upright grids are not posed: no version, none checked
    path = save_classifier(build_classifier(upright.model), tmp_path / "up.keras", classes=("a", "b", "c"),
                           train_config=upright)  # fmt: skip
    assert "pose_version" not in load_classifier(path).metadata
    assert load_classifier(with_metadata(path, tmp_path / "up2.keras", pose_version=1)).config.orientation == "upright"


def test_voxnet_builds_and_predicts_at_the_smallest_grid_it_accepts() -> None:
    from voxelstudio.ml.classifier_config import VOXNET_MIN_GRID

    config = ClassifierConfig(arch="voxnet", n_classes=3, input_shape=(VOXNET_MIN_GRID,) * 3, width=0.25).validate()
    model = build_classifier(config)
    assert model.predict(np.zeros((1, *config.input_shape, 1), np.float32), verbose=0).shape == (1, 3)
