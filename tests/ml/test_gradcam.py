"""ml.gradcam: the feature layer it picks, the receptive-field mapping, and heat maps that point at the evidence."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from voxelstudio.ml.classifier_config import ClassifierConfig
from voxelstudio.ml.classifiers import build_classifier
from voxelstudio.ml.gradcam import feature_grid_mapping, feature_layer, grad_cam

BRIGHT, DIM = 1.0, 0.5


def _two_detector_model() -> keras.Model:
    """16^3 -> a 2x2x2 stride-2 average (two channels) -> GAP -> softmax Dense, with weights set by hand.

    Channel 0 fires on bright voxels only (relu(2v - 1.2)), channel 1 on dim and bright ones (relu(2v - 0.4)).
    Class "bright" scores 3*ch0 - ch1, class "dim" the opposite: the evidence for each class is where its
    pattern is.
    """
    inputs = keras.Input((16, 16, 16, 1))
    conv = keras.layers.Conv3D(2, 2, strides=2, activation="relu", name="detectors")
    x = conv(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    dense = keras.layers.Dense(2, activation="softmax", name="probabilities")
    model = keras.Model(inputs, dense(x))
    kernel = np.full((2, 2, 2, 1, 2), 2.0 / 8, np.float32)  # 2 x the block mean
    conv.set_weights([kernel, np.array([-1.2, -0.4], np.float32)])
    dense.set_weights([np.array([[-3.0, 3.0], [1.0, -1.0]], np.float32), np.zeros(2, np.float32)])
    return model


def _two_pattern_grid() -> np.ndarray:
    """A bright block at x < 8 and a dim block at x >= 8 (x is axis 1, so swapped axes would show)."""
    grid = np.zeros((16, 16, 16), np.float32)
    grid[4:12, 2:6, 4:12] = BRIGHT
    grid[4:12, 10:14, 4:12] = DIM
    return grid


def test_heat_map_is_higher_where_the_evidence_for_the_class_is() -> None:
    model, grid = _two_detector_model(), _two_pattern_grid()
    dim, bright = (grad_cam(model, grid, class_index=i) for i in (0, 1))
    for cam in (dim, bright):
        assert cam.heatmap.shape == grid.shape and cam.heatmap.dtype == np.float32
        assert cam.heatmap.min() >= 0.0 and cam.heatmap.max() == pytest.approx(1.0)
        assert cam.layer == "detectors"
    left, right = (slice(None), slice(0, 8)), (slice(None), slice(8, 16))
    assert bright.heatmap[left].mean() > 5 * bright.heatmap[right].mean()
    assert dim.heatmap[right].mean() > 5 * dim.heatmap[left].mean()
    peak = np.unravel_index(np.argmax(bright.heatmap), grid.shape)
    assert grid[peak] == BRIGHT  # the hottest voxel lies in the bright block
    assert np.allclose(bright.heatmap[:, :, :2], 0) and np.allclose(bright.heatmap[:2], 0)  # nothing outside it
    assert bright.probabilities.sum() == pytest.approx(1.0) and bright.class_index == 1


def test_default_class_is_the_predicted_one() -> None:
    model, grid = _two_detector_model(), _two_pattern_grid()
    predicted = grad_cam(model, grid)
    assert predicted.class_index == int(np.argmax(predicted.probabilities))
    np.testing.assert_allclose(predicted.heatmap, grad_cam(model, grid, class_index=predicted.class_index).heatmap)


@pytest.mark.parametrize(
    ("arch", "overrides", "layer"),
    [
        ("voxnet", {"width": 0.125}, "conv2_lrelu"),
        ("vrn", {"width": 0.125, "blocks_per_stage": 1, "stochastic_depth": False}, "final_elu"),
    ],
)
def test_classifier_builders_get_a_normalised_map_over_the_input(arch: str, overrides: dict, layer: str) -> None:
    """On each builder's own 32^3 input (at 16^3 VRN's feature map is a single voxel: no map at all).

    Before the ReLU the classes' maps sum to zero (softmax gradients do), so even an untrained model has a class
    with evidence somewhere: its map must reach exactly 1 and vary over the grid. An all-zero map fails.
    """
    keras.utils.set_random_seed(0)
    model = build_classifier(ClassifierConfig.for_arch(arch, n_classes=3, **overrides))
    assert feature_layer(model).name == layer
    assert min(feature_layer(model).output.shape[1:4]) >= 2  # a map, not one voxel
    grid = np.zeros((32, 32, 32), np.float32)
    grid[6:26, 8:20, 10:22] = 1
    cams = [grad_cam(model, grid, class_index=index) for index in range(3)]
    for cam in cams:
        assert cam.heatmap.shape == grid.shape and np.isfinite(cam.heatmap).all()
        assert cam.heatmap.min() >= 0.0 and cam.heatmap.max() <= 1.0
        assert cam.heatmap.max() in (0.0, pytest.approx(1.0))  # normalised, or no evidence at all
        assert cam.layer == layer and cam.probabilities.shape == (3,)
    assert any(cam.heatmap.max() == pytest.approx(1.0) and cam.heatmap.std() > 0.01 for cam in cams)


def test_voxnet_feature_voxels_map_to_their_receptive_field_centres() -> None:
    model = build_classifier(ClassifierConfig.for_arch("voxnet", n_classes=2, width=0.125))  # 32^3 input
    # conv1 5^3 stride 2 valid: i -> 2i + 2; conv2 3^3 valid: j -> conv1 j + 1 -> 2j + 4; pool 2: k -> 4k + 5
    assert feature_grid_mapping(model, model.get_layer("conv2_lrelu")) == ((4.0, 2.0),) * 3
    assert feature_grid_mapping(model, model.get_layer("pool")) == ((5.0, 4.0),) * 3


def test_layer_by_name_and_errors() -> None:
    model = _two_detector_model()
    assert feature_layer(model, "detectors").name == "detectors"
    with pytest.raises(ValueError, match="has no layer 'nope'"):
        feature_layer(model, "nope")
    with pytest.raises(ValueError, match="not \\(N, H, W, Z, C\\)"):
        feature_layer(model, "probabilities")
    with pytest.raises(ValueError, match="grid of shape \\(8, 8, 8\\)"):
        grad_cam(model, np.zeros((8, 8, 8)))
    with pytest.raises(ValueError, match="class index 5 out of range"):
        grad_cam(model, _two_pattern_grid(), class_index=5)
