"""tests/reliability: crash safety, full disks and memory; TensorFlow quiet, on two threads, set before it loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny simple denoiser (2 filters, 2 layers) saved with VoxelStudio metadata."""
    import keras

    from voxelstudio.core.normalize import PercentileNormalizer
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.persistence import save_model

    keras.utils.set_random_seed(0)
    cfg = TrainConfig(model=DenoiserConfig.for_arch("simple", filters=2, kernel=(3, 3, 3), n_layers=2))
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    return save_model(build_denoiser(cfg.model), path, train_config=cfg, normalizer=PercentileNormalizer(), extra={})
