from __future__ import annotations

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from voxelstudio.ml import blocks


def _run(build, x: np.ndarray) -> tuple[keras.Model, np.ndarray]:
    """Build a one-input model from ``build(tensor)`` and evaluate it on ``x``."""
    inputs = keras.Input((None, None, None, x.shape[-1]))
    model = keras.Model(inputs, build(inputs))
    return model, to_numpy(model(x))


def _volume(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize(("channels", "groups"), [(1, 1), (2, 1), (4, 2), (6, 3), (8, 4), (12, 6), (16, 8), (64, 8)])
def test_group_count_divides_channels(channels: int, groups: int) -> None:
    assert blocks.group_count(channels) == groups
    assert channels % groups == 0


def test_normalization_layers() -> None:
    assert isinstance(blocks.normalization("none"), keras.layers.Identity)
    assert isinstance(blocks.normalization("batch"), keras.layers.BatchNormalization)
    assert isinstance(blocks.normalization("layer"), keras.layers.LayerNormalization)
    assert blocks.normalization("instance").groups == -1
    assert blocks.normalization("group", channels=12).groups == 6
    with pytest.raises(ValueError, match="channel count"):
        blocks.normalization("group")
    with pytest.raises(ValueError, match="unknown"):
        blocks.normalization("weight")


def test_instance_normalization_standardises_each_channel_over_space() -> None:
    x = _volume((2, 6, 5, 4, 3)) * np.array([1.0, 10.0, 100.0], dtype=np.float32)
    _, y = _run(lambda t: blocks.normalization("instance")(t), x)
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2, 3)), 1.0, atol=2e-2)


def test_conv_block_layers_and_shape() -> None:
    model, y = _run(
        lambda t: blocks.conv_block(t, 4, (3, 3, 1), "group", "relu", dropout=0.1, name="c"), _volume((1, 8, 7, 5, 2))
    )
    assert y.shape == (1, 8, 7, 5, 4)
    assert (y >= 0).all()
    conv = model.get_layer("c_conv")
    assert conv.use_bias is False  # the normalisation's offset replaces it
    assert model.get_layer("c_norm").groups == 2
    assert isinstance(model.get_layer("c_drop"), keras.layers.Dropout)


def test_residual_block_is_the_shortcut_when_its_last_conv_is_zero() -> None:
    x = _volume((1, 6, 6, 4, 4)) - 0.5
    model, _ = _run(lambda t: blocks.residual_block(t, 4, 3, name="r"), x)
    conv = model.get_layer("r_b_conv")
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    np.testing.assert_allclose(to_numpy(model(x)), np.maximum(x, 0.0), atol=1e-6)


def test_residual_block_projects_a_shortcut_of_another_width() -> None:
    model, y = _run(lambda t: blocks.residual_block(t, 6, 3, "instance", name="r"), _volume((1, 6, 6, 4, 2)))
    assert y.shape == (1, 6, 6, 4, 6)
    assert model.get_layer("r_proj").kernel.shape == (1, 1, 1, 2, 6)


@pytest.mark.parametrize(("pool_z", "z"), [(True, 2), (False, 4)])
def test_down_and_up(pool_z: bool, z: int) -> None:
    x = _volume((1, 8, 6, 4, 1))
    _, small = _run(lambda t: blocks.down(t, pool_z), x)
    assert small.shape == (1, 4, 3, z, 1)
    assert small[0, 0, 0, 0, 0] == x[0, :2, :2, : 4 // z, 0].max()
    _, big = _run(lambda t: blocks.up(t, pool_z), small)
    assert big.shape == x.shape


def test_separable_conv3d_filters_each_channel_alone_then_mixes() -> None:
    x = _volume((1, 6, 6, 4, 3))
    model, y = _run(lambda t: blocks.separable_conv3d(t, 5, 3, name="s"), x)
    assert y.shape == (1, 6, 6, 4, 5)
    depthwise = model.get_layer("s_depthwise")
    assert depthwise.kernel.shape == (3, 3, 3, 1, 3)
    assert model.count_params() == (27 * 3 + 3) + (3 * 5 + 5)
    probe = keras.Model(model.input, depthwise.output)
    changed = x.copy()
    changed[..., 0] += 1.0
    diff = np.abs(to_numpy(probe(changed)) - to_numpy(probe(x))).max(axis=(0, 1, 2, 3))
    assert diff[0] > 0 and diff[1] == 0 and diff[2] == 0


def test_inception_branches_concatenate() -> None:
    branches = [
        lambda u: blocks.conv_block(u, 2, 1),
        lambda u: blocks.conv_block(u, 3, 3),
        lambda u: blocks.down(blocks.up(u)),
    ]
    _, y = _run(lambda t: blocks.inception_branches(t, branches), _volume((1, 4, 4, 4, 2)))
    assert y.shape == (1, 4, 4, 4, 2 + 3 + 2)


def test_dense_block_keeps_its_input_and_grows() -> None:
    x = _volume((1, 5, 5, 3, 2))
    _, y = _run(lambda t: blocks.dense_block(t, 3, 4, norm="batch", name="d"), x)
    assert y.shape == (1, 5, 5, 3, 2 + 3 * 4)
    np.testing.assert_array_equal(y[..., :2], x)


@pytest.mark.parametrize(
    ("pads", "multiple"),
    [
        (((0, 0), (0, 0), (0, 0)), (4, 8, 4)),
        (((2, 3), (1, 0), (6, 9)), (1, 1, 1)),
        (((1, 1), (0, 2), (3, 0)), (2, 4, 8)),
    ],
)
def test_reflect_pad_matches_numpy_and_crop_undoes_it(pads, multiple) -> None:
    x = _volume((1, 7, 5, 3, 2))
    pad_layer = blocks.ReflectPad3D(pads, multiple)
    padded = to_numpy(pad_layer(x))
    sizes = [n + sum(p) for n, p in zip(x.shape[1:4], pads, strict=True)]
    extra = [(-s) % m for s, m in zip(sizes, multiple, strict=True)]
    widths = [(p[0] + e // 2, p[1] + e - e // 2) for p, e in zip(pads, extra, strict=True)]
    expected = np.pad(x, [(0, 0), *widths, (0, 0)], mode="reflect")
    np.testing.assert_array_equal(padded, expected)
    assert pad_layer.compute_output_shape(x.shape) == expected.shape
    np.testing.assert_array_equal(to_numpy(blocks.CropLike(pads, multiple)([padded, x])), x)


def test_reflect_pad_handles_a_single_slice_and_round_trips_its_config() -> None:
    x = _volume((1, 4, 4, 1, 1))
    layer = blocks.ReflectPad3D(((0, 0), (0, 0), (2, 3)))
    y = to_numpy(layer(x))
    assert y.shape == (1, 4, 4, 6, 1)
    np.testing.assert_array_equal(y, np.repeat(x, 6, axis=3))
    clone = blocks.ReflectPad3D.from_config(layer.get_config())
    assert clone.pads == layer.pads and clone.multiple == layer.multiple
