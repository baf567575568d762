"""Tiny untrained denoiser files for the tasks tests (weights do not matter; shapes and wiring do)."""

from __future__ import annotations

import numpy as np


def tiny_model(folder, arch, *, spacing_input=False, input_shift=None, flipped_input_shift=None, shift_spacing=None):
    """A tiny untrained denoiser file; with ``spacing_input`` its FiLM layers get random weights (they start as the
    identity) and it records training on lateral 0.1-0.2 µm, axial 0.1-0.3 µm voxels; ``input_shift``,
    ``flipped_input_shift`` and ``shift_spacing``: see ``persistence.LoadedModel``."""
    import keras

    from voxelstudio.core.normalize import PercentileNormalizer
    from voxelstudio.ml.blocks import FiLM3D
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.persistence import save_model

    keras.utils.set_random_seed(0)
    options = {"simple": {"filters": 2, "kernel": (3, 3, 3), "n_layers": 2}, "unet": {"filters": 2, "depth": 2}}
    cfg = TrainConfig(model=DenoiserConfig.for_arch(arch, **options[arch], spacing_input=spacing_input))
    model, extra = build_denoiser(cfg.model), {}
    if spacing_input:
        rng = np.random.default_rng(0)
        for layer in model.layers:
            if isinstance(layer, FiLM3D):
                layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
        extra = {"spacing_range": {"lateral": [0.1, 0.2], "axial": [0.1, 0.3]}}
    path = folder / f"{arch}{'-spacing' if spacing_input else ''}{'-shifted' if input_shift else ''}.keras"
    save_model(model, path, train_config=cfg, normalizer=PercentileNormalizer(), extra=extra, input_shift=input_shift,
               flipped_input_shift=flipped_input_shift, shift_spacing=shift_spacing)  # fmt: skip
    return path
