"""Child process of test_cross_backend.py, on the backend its KERAS_BACKEND names.

``save DIR``: builds a tiny denoiser (one training step, so its optimizer has state), a tiny one that takes the voxel
size (its FiLM layers given weights, so the voxel size changes the output) and a tiny VRN classifier,
saves the model files and a checkpoint with optimizer state as ``DIR/<backend>.*``, and their predictions of a fixed
input as ``DIR/<backend>.expected.npz``. ``load DIR``: loads every backend's files, predicts the same input and
prints, per saving backend, the largest difference relative to the data range and whether the checkpoint's
optimizer state was restored, as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path

import keras
import numpy as np

from voxelstudio.core.normalize import PercentileNormalizer
from voxelstudio.ml import backend
from voxelstudio.ml.classifier_config import ClassifierConfig, ClassifierTrainConfig
from voxelstudio.ml.classifiers import build_classifier, load_classifier, save_classifier
from voxelstudio.ml.config import DenoiserConfig, TrainConfig
from voxelstudio.ml.denoisers import build_denoiser
from voxelstudio.ml.persistence import load_model, restore_optimizer_state, save_model
from voxelstudio.ml.spacing import conditioning, with_features

DENOISER = TrainConfig(model=DenoiserConfig.for_arch("unet", filters=2, kernel=(3, 3, 3), depth=2))
CONDITIONED = TrainConfig(model=dataclasses.replace(DENOISER.model, spacing_input=True))
SPACING = (0.1, 0.1, 0.25)
CLASSIFIER = ClassifierTrainConfig(model=ClassifierConfig(arch="vrn", n_classes=3, input_shape=(16, 16, 16),
                                                          width=0.125, blocks_per_stage=1))  # fmt: skip
CLASSES = ("a", "b", "c")


def inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    volume = rng.random((1, 20, 18, 8, 1), dtype=np.float32)
    grids = (rng.random((2, 16, 16, 16, 1)) > 0.7).astype(np.float32)
    return volume, grids


def compiled_denoiser() -> keras.Model:
    model = build_denoiser(DENOISER.model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def save(folder: Path) -> None:
    name = backend.name()
    keras.utils.set_random_seed(0)
    volume, grids = inputs()
    denoiser = compiled_denoiser()
    denoiser.train_on_batch(volume, volume)
    normalizer = PercentileNormalizer()
    save_model(denoiser, folder / f"{name}.denoiser.keras", train_config=DENOISER, normalizer=normalizer)
    save_model(denoiser, folder / f"{name}.checkpoint.keras", train_config=DENOISER, normalizer=normalizer,
               optimizer_state=True)  # fmt: skip
    conditioned = build_denoiser(CONDITIONED.model)
    rng = np.random.default_rng(0)
    for layer in conditioned.layers:
        if type(layer).__name__ == "FiLM3D":
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    save_model(conditioned, folder / f"{name}.conditioned.keras", train_config=CONDITIONED, normalizer=normalizer)
    classifier = build_classifier(CLASSIFIER.model)
    save_classifier(classifier, folder / f"{name}.classifier.keras", classes=CLASSES, train_config=CLASSIFIER)
    np.savez(
        folder / f"{name}.expected.npz",
        denoiser=denoiser.predict_on_batch(volume),
        conditioned=conditioned.predict_on_batch(with_features(volume, conditioning(conditioned, SPACING))),
        classifier=classifier.predict_on_batch(grids),
    )


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    span = float(expected.max() - expected.min()) or 1.0
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected)) / span)


def load(folder: Path) -> dict[str, dict[str, object]]:
    volume, grids = inputs()
    results = {}
    for expected_file in sorted(folder.glob("*.expected.npz")):
        source = expected_file.name.split(".")[0]
        expected = np.load(expected_file)
        denoiser = load_model(folder / f"{source}.denoiser.keras").model
        conditioned = load_model(folder / f"{source}.conditioned.keras").model
        classifier = load_classifier(folder / f"{source}.classifier.keras").model
        resumed = compiled_denoiser()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a restart of the optimizer warns: count it as not restored
            restored = restore_optimizer_state(resumed, folder / f"{source}.checkpoint.keras")
        results[source] = {
            "denoiser": _relative_error(denoiser.predict_on_batch(volume), expected["denoiser"]),
            "conditioned": _relative_error(
                conditioned.predict_on_batch(with_features(volume, conditioning(conditioned, SPACING))),
                expected["conditioned"],
            ),
            "classifier": _relative_error(classifier.predict_on_batch(grids), expected["classifier"]),
            "optimizer_restored": restored,
            "optimizer_step": int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)),
        }
    return results


if __name__ == "__main__":
    mode, directory = sys.argv[1], Path(sys.argv[2])
    if mode == "save":
        save(directory)
    else:
        print(json.dumps(load(directory)))
