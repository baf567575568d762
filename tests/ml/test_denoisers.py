from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from voxelstudio.ml.backend import accelerators
from voxelstudio.ml.config import ARCHITECTURES, DenoiserConfig
from voxelstudio.ml.denoisers import build_denoiser, pad_to_multiple, receptive_field, required_multiple
from voxelstudio.ml.losses import ImbalancedLoss

TINY = {
    "simple": {"filters": 2, "kernel": (5, 5, 3), "n_layers": 2},
    "unet": {"filters": 2, "kernel": (3, 3, 3), "depth": 3},
    "resunet": {"filters": 4, "kernel": (3, 3, 3), "depth": 2},
}


def tiny(arch: str, **overrides) -> DenoiserConfig:
    return DenoiserConfig.for_arch(arch, **{**TINY[arch], **overrides})


def test_importing_ml_geometry_does_not_start_tensorflow() -> None:
    code = (
        "import sys, voxelstudio.ml, voxelstudio.ml.config, voxelstudio.ml.denoisers as d\n"
        "from voxelstudio.ml.config import DenoiserConfig\n"
        "assert d.receptive_field(DenoiserConfig.for_arch('unet')) == (50, 50, 122)\n"
        "assert voxelstudio.ml.DenoiserConfig is DenoiserConfig\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_simple_defaults_match_the_original_size() -> None:
    model = build_denoiser(DenoiserConfig.for_arch("simple"))
    taps = 16 * 16 * 8
    expected = (taps * 1 * 4 + 4) + 3 * (taps * 4 * 4 + 4) + (4 + 1)  # 4 convs of 4 filters, 1x1x1 output
    assert model.count_params() == expected
    assert 100_000 <= expected <= 160_000


def test_unet_defaults_match_the_original_size() -> None:
    model = build_denoiser(DenoiserConfig.for_arch("unet"))
    assert 150_000 <= model.count_params() <= 250_000
    assert model.layers[-2].activation.__name__ == "linear"  # see for_arch: sigmoid stalls at black under MSE
    original = build_denoiser(DenoiserConfig.for_arch("unet", output_activation="sigmoid"))
    assert original.layers[-2].activation.__name__ == "sigmoid"
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling3D)]) == 2


def test_resunet_defaults_are_care_like() -> None:
    cfg = DenoiserConfig.for_arch("resunet")
    model = build_denoiser(cfg)
    assert 200_000 <= model.count_params() <= 600_000
    assert all(layer.pool_size == (2, 2, 1) for layer in model.layers if isinstance(layer, keras.layers.MaxPooling3D))
    assert any(isinstance(layer, keras.layers.GroupNormalization) for layer in model.layers)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_any_shape_in_same_shape_out(arch: str) -> None:
    model = build_denoiser(tiny(arch))
    x = np.random.default_rng(0).random((1, 37, 23, 11, 1), dtype=np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == x.shape
    assert y.dtype == np.float32 and np.isfinite(y).all()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_several_input_channels_give_one_output_channel(arch: str) -> None:
    model = build_denoiser(tiny(arch), in_channels=2)
    assert model.predict(np.zeros((1, 8, 8, 4, 2), np.float32), verbose=0).shape == (1, 8, 8, 4, 1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_mixed_precision_keeps_a_float32_output(arch: str) -> None:
    """Half-precision bodies, float32 outputs (bfloat16 on CPUs, which lack float16 pooling kernels)."""
    policy = "mixed_float16" if accelerators() else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_denoiser(tiny(arch))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("reflect_pad").compute_dtype == policy.removeprefix("mixed_")
    assert model.layers[-1].compute_dtype == "float32"
    y = model.predict(np.random.default_rng(0).random((1, 13, 9, 5, 1), np.float32), verbose=0)
    assert y.dtype == np.float32 and y.shape == (1, 13, 9, 5, 1) and np.isfinite(y).all()


def test_resunet_predicts_a_correction_to_its_input() -> None:
    model = build_denoiser(tiny("resunet"))
    last = model.get_layer("correction")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    x = np.random.default_rng(1).random((1, 9, 10, 3, 1), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), x, atol=1e-6)


def test_simple_borders_see_mirrored_data_not_zeros() -> None:
    """A constant volume stays constant up to the borders; zero padding would darken or brighten them."""
    model = build_denoiser(tiny("simple"))
    model.set_weights([np.abs(w) + 0.01 for w in model.get_weights()])  # every unit passes light: borders would show
    y = model.predict(np.full((1, 12, 12, 6, 1), 0.5, np.float32), verbose=0)
    assert y.min() > 0.01
    np.testing.assert_allclose(y, y[0, 6, 6, 3, 0], rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_trains_on_a_tiny_problem(arch: str) -> None:
    rng = np.random.default_rng(0)
    target = (rng.random((2, 16, 16, 8, 1)) > 0.9).astype(np.float32)
    raw = (0.8 * target + 0.2 * rng.random(target.shape)).astype(np.float32)
    model = build_denoiser(tiny(arch))
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss=ImbalancedLoss(weight=10.0), jit_compile=False)
    losses = [float(model.train_on_batch(raw, target)) for _ in range(10)]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]


def _changed_extent(model: keras.Model, shape: tuple[int, int, int], voxel: tuple[int, int, int]) -> np.ndarray:
    """Extent (H, W, Z) of the outputs that change when one input voxel changes."""
    x = np.random.default_rng(0).random((1, *shape, 1), dtype=np.float32)
    before = to_numpy(model(x))
    x[(0, *voxel, 0)] += 10.0
    changed = np.argwhere(to_numpy(model(x)) != before)[:, 1:4]
    return changed.max(axis=0) - changed.min(axis=0) + 1


def test_receptive_field_of_simple_is_exact() -> None:
    cfg = DenoiserConfig.for_arch("simple", filters=2, kernel=(5, 4, 3), n_layers=3)
    assert receptive_field(cfg) == (13, 10, 7)
    extent = _changed_extent(build_denoiser(cfg), (30, 30, 20), (15, 15, 10))
    assert tuple(extent) == receptive_field(cfg)


def test_receptive_field_of_unet_is_the_worst_case_over_positions() -> None:
    cfg = DenoiserConfig.for_arch("unet", filters=2, kernel=(3, 5, 3), depth=2, pool_z=False)
    assert receptive_field(cfg) == (20, 38, 15)
    model = build_denoiser(cfg)
    extents = [_changed_extent(model, (40, 48, 16), (18 + i, 22 + i, 8)) for i in range(4)]
    assert tuple(np.max(extents, axis=0)) == receptive_field(cfg)


@pytest.mark.parametrize(
    ("arch", "overrides", "multiple"),
    [("simple", {}, (1, 1, 1)), ("unet", {}, (4, 4, 4)), ("resunet", {}, (4, 4, 1)), ("unet", {"depth": 4}, (8, 8, 8))],
)
def test_required_multiple(arch: str, overrides: dict, multiple: tuple[int, int, int]) -> None:
    assert required_multiple(DenoiserConfig.for_arch(arch, **overrides)) == multiple


def test_pad_to_multiple_mirrors_and_crops_back() -> None:
    x = np.arange(5 * 6 * 3, dtype=np.float32).reshape(5, 6, 3)
    padded, crop = pad_to_multiple(x, (4, 4, 8))
    assert padded.shape == (8, 8, 8)
    np.testing.assert_array_equal(padded[crop], x)
    np.testing.assert_array_equal(padded, np.pad(x, [(1, 2), (1, 1), (2, 3)], mode="reflect"))
    batch = x[None, ..., None]
    padded, crop = pad_to_multiple(batch, (2, 2, 2), axes=(1, 2, 3))
    assert padded.shape == (1, 6, 6, 4, 1)
    np.testing.assert_array_equal(padded[crop], batch)


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="architecture"):
        build_denoiser(DenoiserConfig(arch="vnet"))
    with pytest.raises(ValueError, match="in_channels"):
        build_denoiser(tiny("simple"), in_channels=0)
