"""Training a classifier on procedural shapes made afresh for every batch: the sets beside it, the model it writes."""

from __future__ import annotations

import numpy as np

from voxelstudio.sim.shapes import SHAPE_CLASSES, generate_shapes
from voxelstudio.tasks.classify_shapes import TEST_SEED_OFFSET, shapes_set, train_classifier_on_shapes
from voxelstudio.tasks.classify_train import voted_accuracy


def test_shapes_sets_are_the_seeded_shapes_a_share_of_them_made_harder() -> None:
    grids, labels = shapes_set(2, seed=5, size=16)
    plain = np.stack([grid for _, _, grid in generate_shapes(2, seed=5, size=16)])
    np.testing.assert_array_equal(grids, plain)
    assert labels.tolist() == [i for i in range(len(SHAPE_CLASSES)) for _ in range(2)]
    hard, _ = shapes_set(2, seed=5, size=16, hard_prob=1.0)
    assert all(not np.array_equal(h, p) for h, p in zip(hard, plain, strict=True))
    again, _ = shapes_set(2, seed=5, size=16, hard_prob=1.0)
    np.testing.assert_array_equal(hard, again)


def test_training_on_generated_shapes_writes_a_tested_model_with_its_domain(tmp_path) -> None:
    from voxelstudio.ml.classifier_config import ClassifierTrainConfig
    from voxelstudio.ml.classifiers import load_classifier

    model = {"input_shape": (16, 16, 16), "width": 0.25, "orientation": "any"}
    config = ClassifierTrainConfig.for_arch("voxnet", model_overrides=model, epochs=2, batch_size=8)
    out = tmp_path / "shapes.keras"
    result = train_classifier_on_shapes(config, out, steps=3, workers=0, val_per_class=2, test_per_class=1)
    assert result.model_path == out and result.epochs_run == 2 and result.stopped_reason == "epochs"
    assert result.split == {"train": 0, "validation": 20, "test": 10}
    test_grids, test_labels = shapes_set(1, config.seed + TEST_SEED_OFFSET, size=16, hard_prob=0.3)
    assert result.test_accuracy == voted_accuracy(out, test_grids, test_labels, config.vote_rotations)
    loaded = load_classifier(out)
    assert loaded.classes == SHAPE_CLASSES and loaded.config.input_shape == (16, 16, 16)
    extra = loaded.metadata["extra"]
    assert extra["domain"]["validation_grids"] == 20
    assert extra["training_data"] == {"generator": "procedural shapes", "hard_prob": 0.3, "steps_per_epoch": 3,
                                      "batch_size": 8, "validation_per_class": 2}  # fmt: skip
