"""tasks.datasets, tasks.classify and tasks.classify_train: folder data sets and their errors, the stratified split,
training end to end, evaluation reports, classifying volumes, the shapes data set and meshes."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import pytest
import scipy.io

from voxelstudio.core.errors import ModelError, VolumeReadError, VolumeWriteError
from voxelstudio.core.resources import resource_path
from voxelstudio.core.volume import Volume
from voxelstudio.tasks.classifier_domain import add_extra_metadata, pose_options
from voxelstudio.tasks.classify import (
    classification_report,
    classify_volumes,
    classify_with_heatmap,
    default_classifier_path,
    evaluate_classifier,
)
from voxelstudio.tasks.classify_train import train_classifier, train_classifier_folder
from voxelstudio.tasks.datasets import (
    fit_grid,
    load_class_folder,
    stratified_split,
    write_shapes_dataset,
)


def _cube(size: int = 16, lo: int = 4, hi: int = 12) -> np.ndarray:
    grid = np.zeros((size,) * 3, np.uint8)
    grid[lo:hi, lo:hi, lo:hi] = 1
    return grid


def _write(folder: Path, name: str, grid: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.suffix == ".mat":
        scipy.io.savemat(path, {"voxel": grid})
    else:
        np.save(path, grid)
    return path


def test_folder_data_set_loads_mat_and_npy_as_occupancy(tmp_path: Path) -> None:
    _write(tmp_path / "b_cube", "one.mat", _cube() * 255)
    _write(tmp_path / "b_cube", "two.npy", _cube(lo=5))
    _write(tmp_path / "a_ball", "one.npy", _cube(hi=8).astype(np.float32) * 0.9)
    data = load_class_folder(tmp_path, grid_shape=(16, 16, 16))
    assert data.classes == ("a_ball", "b_cube") and data.labels.tolist() == [0, 1, 1]
    assert data.grids.dtype == np.uint8 and data.grids.shape == (3, 16, 16, 16)
    np.testing.assert_array_equal(data.grids[1], _cube())  # 0/255 becomes 0/1
    assert data.counts() == {"a_ball": 1, "b_cube": 2} and data.files[0].name == "one.npy"
    with pytest.raises(ValueError, match="c_cone are not among the model's"):
        _write(tmp_path / "c_cone", "x.npy", _cube())
        load_class_folder(tmp_path, grid_shape=(16,) * 3, classes=("a_ball", "b_cube"))


def test_other_sizes_are_resampled_with_a_warning_naming_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "a", "big.npy", _cube(32, 8, 24))
    _write(tmp_path / "b", "ok.npy", _cube())
    with pytest.warns(UserWarning, match=r"1 grid\(s\) resampled to 16x16x16, e.g. .*big.npy"):
        data = load_class_folder(tmp_path, grid_shape=(16, 16, 16))
    assert abs(int(data.grids[0].sum()) - 8**3) < 0.1 * 8**3
    grid, changed = fit_grid(_cube(), (16, 16, 16))
    assert not changed and grid.sum() == 8**3


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "no class sub-folders"),
        ({"only": ["x.npy"]}, r"only one class \(only\)"),
        ({"a": ["x.npy"], "b": []}, "b: class folder holds no grid files"),
    ],
)
def test_bad_folders_give_clear_errors(tmp_path: Path, layout: dict, message: str) -> None:
    for name, files in layout.items():
        (tmp_path / name).mkdir()
        for file in files:
            _write(tmp_path / name, file, _cube())
    with pytest.raises(ValueError, match=message):
        load_class_folder(tmp_path, grid_shape=(16,) * 3)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_class_folder(tmp_path / "missing")
    (tmp_path / "grid.npy").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"grid\.npy: is a file, not a folder of class folders"):
        load_class_folder(tmp_path / "grid.npy")


def test_unreadable_and_unresamplable_files_are_named(tmp_path: Path) -> None:
    _write(tmp_path / "a", "fine.npy", _cube())
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(VolumeReadError, match=r"broken\.npy"):
        load_class_folder(tmp_path, grid_shape=(16,) * 3)
    (tmp_path / "b" / "broken.npy").unlink()
    _write(tmp_path / "b", "flat.npy", np.ones((32, 32, 4), np.uint8))
    with pytest.raises(VolumeReadError, match=r"flat.npy: grid of shape 32x32x4 cannot be resampled to 16x16x16"):
        load_class_folder(tmp_path, grid_shape=(16,) * 3)


def test_stratified_split_is_reproducible_disjoint_and_keeps_class_proportions() -> None:
    labels = np.repeat([0, 1, 2], [40, 20, 10])
    train, val, test = stratified_split(labels, (0.15, 0.15), seed=3)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(70))
    for part, per_class in ((val, [6, 3, 2]), (test, [6, 3, 2]), (train, [28, 14, 6])):
        assert np.bincount(labels[part], minlength=3).tolist() == per_class
    again = stratified_split(labels, (0.15, 0.15), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not np.array_equal(stratified_split(labels, (0.15, 0.15), seed=4)[1], val)
    tiny = stratified_split(np.array([0, 0, 1, 1]), (0.1, 0.1), seed=0)
    assert [np.bincount(np.array([0, 0, 1, 1])[p], minlength=2).tolist() for p in tiny] == [[1, 1], [1, 1], [0, 0]]


def test_classification_report_values() -> None:
    report = classification_report(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]), ("a", "b", "c"))
    assert report["accuracy"] == pytest.approx(0.6)
    assert report["per_class"] == pytest.approx({"a": 0.5, "b": 2 / 3})
    assert report["confusion"] == [[1, 1, 0], [1, 2, 0], [0, 0, 0]] and report["classes"] == ["a", "b", "c"]


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    write_shapes_dataset(folder, per_class=7, seed=1, size=16)
    return folder


@pytest.fixture(scope="module")
def trained(shapes_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from voxelstudio.ml.classifier_config import ClassifierTrainConfig

    config = ClassifierTrainConfig.for_arch(
        "voxnet",
        model_overrides={"width": 0.25, "input_shape": (16,) * 3},
        epochs=2,
        vote_rotations=4,
        test_fraction=0.15,
    )
    data = load_class_folder(shapes_dir, grid_shape=(16,) * 3)
    out = tmp_path_factory.mktemp("model") / "shapes.keras"
    return train_classifier(data, config=config, out=out), data


def test_write_shapes_dataset(tmp_path: Path, shapes_dir: Path) -> None:
    folders = sorted(p.name for p in shapes_dir.iterdir())
    assert len(folders) == 10 and all(len(list((shapes_dir / f).glob("*.npy"))) == 7 for f in folders)
    grid = np.load(shapes_dir / "torus" / "torus_0003.npy")
    assert grid.dtype == np.uint8 and grid.shape == (16, 16, 16)
    mats = write_shapes_dataset(tmp_path, per_class=1, seed=1, size=16, fmt="mat")
    assert mats[4].name == "torus_0000.mat"
    np.testing.assert_array_equal(scipy.io.loadmat(mats[4])["voxel"], np.load(shapes_dir / "torus" / "torus_0000.npy"))
    for fmt in ("mat", "npy"):  # in another format it doubled every grid, across the training/validation split
        with pytest.raises(VolumeWriteError, match="already holds a shapes data set; pass --overwrite"):
            write_shapes_dataset(tmp_path, per_class=1, seed=1, size=16, fmt=fmt)
    write_shapes_dataset(tmp_path, per_class=1, seed=2, size=16, fmt="npy", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "torus").iterdir()) == ["torus_0000.npy"]  # the .mat set is gone


def test_train_classifier_end_to_end(trained) -> None:
    result, data = trained
    assert result.model_path.exists() and result.epochs_run == 2 and result.stopped_reason == "epochs"
    assert result.split == {"train": 50, "validation": 10, "test": 10}
    from voxelstudio.ml.classifiers import load_classifier
    from voxelstudio.tasks.classify_train import voted_accuracy

    loaded = load_classifier(result.model_path)
    cfg = loaded.train_config
    *_, test = stratified_split(data.labels, (cfg.val_fraction, cfg.test_fraction), cfg.seed)
    expected = voted_accuracy(result.model_path, data.grids[test], data.labels[test], cfg.voting_views)
    assert result.test_accuracy == expected and result.trials == []  # the held-out grids' score
    assert loaded.classes == data.classes and loaded.input_shape == (16, 16, 16)
    with pytest.raises(ValueError, match="cannot be combined with --search"):
        train_classifier(data, config=loaded.train_config, out=result.model_path, resume=True, search_trials=2)


def test_evaluate_classifier_report(trained, shapes_dir: Path) -> None:
    result, data = trained
    report = evaluate_classifier(shapes_dir, model_path=result.model_path, rotations=4)
    assert set(report) >= {"accuracy", "per_class", "confusion", "classes"}
    assert report["classes"] == list(data.classes) and report["count"] == 70 and report["rotations"] == 4
    confusion = np.array(report["confusion"])
    assert confusion.sum() == 70 and confusion.sum(axis=1).tolist() == [7] * 10
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / 70)


def test_classify_volumes_ranks_classes_and_resamples(trained, shapes_dir: Path) -> None:
    result, _ = trained
    volume = Volume(np.load(shapes_dir / "cube" / "cube_0000.npy"), name="cube_0000")
    big = Volume(np.kron(volume.data, np.ones((2, 2, 2))), name="big_cube")
    with pytest.warns(UserWarning, match="resampled to the model's 16x16x16 input: big_cube"):
        first, second = classify_volumes([volume, big], model_path=result.model_path, top=3)
    probabilities = [p for _, p in first.top]
    assert len(first.top) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert sum(first.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert first.name == "cube_0000" and second.name == "big_cube"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        classify_volumes([volume], model_path=result.model_path, rotations=1)


def test_model_errors(trained, tmp_path: Path) -> None:
    result, _ = trained
    with pytest.raises(ModelError, match="model file not found"):
        classify_volumes([Volume(_cube())], model_path=tmp_path / "none.keras")
    (tmp_path / "x" / "sphere").mkdir(parents=True)
    (tmp_path / "x" / "hexagon").mkdir(parents=True)
    _write(tmp_path / "x" / "sphere", "s.npy", _cube())
    _write(tmp_path / "x" / "hexagon", "h.npy", _cube())
    with pytest.raises(ValueError, match="hexagon are not among the model's"):
        evaluate_classifier(tmp_path / "x", model_path=result.model_path)


def test_mesh_files_are_voxelised(tmp_path: Path) -> None:
    import pyvista as pv

    (tmp_path / "box").mkdir()
    pv.Cube(x_length=2.0, y_length=1.0, z_length=1.0).save(tmp_path / "box" / "box.stl")
    _write(tmp_path / "ball", "ball.npy", _cube(32, 10, 20))
    data = load_class_folder(tmp_path, grid_shape=(32,) * 3)
    box = data.grids[data.classes.index("box")]
    extents = [np.flatnonzero(box.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    assert [int(e[-1] - e[0] + 1) for e in extents] == [24, 12, 12]  # longest side spans 24 of 32 voxels


def test_bundled_model_classifies_the_bundled_shapes() -> None:
    model = default_classifier_path()
    report = evaluate_classifier(resource_path("shapes"), model_path=model, rotations=1)
    assert len(report["classes"]) == 10 and report["count"] == sum(report["confusion"][0]) * 10
    assert report["accuracy"] >= 0.85  # chance is 0.1; the samples (seed 2024) were not used for training


def test_an_older_pose_version_model_is_served_its_own_poses_and_keeps_its_version(tmp_path: Path) -> None:
    from voxelstudio.ml.classifiers import load_classifier, save_classifier
    from voxelstudio.ml.voxel_pose import POSE_VERSION

    bundled = load_classifier(default_classifier_path())
    assert bundled.pose_version == POSE_VERSION == 3
    copy = tmp_path / "pose2.keras"  # as the bundled model was until 2026-12-06: trained before cubes had a frame
    save_classifier(bundled.model, copy, classes=bundled.classes, train_config=bundled.train_config,
                    extra=bundled.metadata["extra"], pose_version=2)  # fmt: skip
    loaded = load_classifier(copy)
    assert loaded.pose_version == 2 and pose_options(loaded) == {"orientation": "any", "pose_version": 2}
    add_extra_metadata(copy, {"note": "rewritten"})
    assert load_classifier(copy).pose_version == 2 and load_classifier(copy).metadata["extra"]["note"] == "rewritten"


def test_classify_with_heatmap_explains_the_prediction_on_the_volume_grid(trained, shapes_dir: Path) -> None:
    result, data = trained
    grid = np.load(shapes_dir / "cube" / "cube_0001.npy")
    flat = 100.0 + 100.0 * np.kron(grid, np.ones((4, 4, 1), np.float32))  # microscope-like: background 100, fine xy
    found_all = []
    for volume in (Volume(grid, name="cube"), Volume(flat, spacing=(0.5, 0.5, 2.0), name="flat")):
        found = classify_with_heatmap(volume, result.model_path, rotations=4)
        found_all.append(found)
        assert found.classes == data.classes and len(found.probabilities) == len(data.classes)
        assert sum(found.probabilities) == pytest.approx(1.0, abs=1e-5)
        assert found.predicted == data.classes[int(np.argmax(found.probabilities))] and found.rotations == 4
        heat = found.heatmap
        assert heat.shape == volume.shape and heat.spacing == volume.spacing and heat.source is None
        assert heat.data.min() >= 0.0 and heat.data.max() <= 1.0 + 1e-6 and heat.name == f"for {found.predicted}"
        assert found.grid.shape == (16, 16, 16) and found.layer == "conv2_lrelu"
    assert np.mean(found_all[0].grid == found_all[1].grid) > 0.97  # the same object in physical units
    assert found_all[1].predicted == found_all[0].predicted
    same = classify_with_heatmap(grid, result.model_path, rotations=1)  # a bare array is accepted too
    assert same.heatmap.shape == grid.shape and same.rotations == 1


def test_train_classifier_folder_loads_then_trains(shapes_dir: Path, tmp_path: Path) -> None:
    from voxelstudio.ml.classifier_config import ClassifierTrainConfig

    config = ClassifierTrainConfig.for_arch("voxnet", model_overrides={"width": 0.125, "input_shape": (16,) * 3},
                                            epochs=1, vote_rotations=1)  # fmt: skip
    messages = []
    result = train_classifier_folder(shapes_dir, config=config, out=tmp_path / "m.keras", report=messages.append)
    assert result.model_path == tmp_path / "m.keras" and result.epochs_run == 1
    assert messages[0].message == "loading" and any("val_accuracy" in m.values for m in messages)


def test_bundled_model_calls_noise_unlike_its_classes_but_not_a_shape() -> None:
    noise = Volume(np.random.default_rng(0).random((32, 32, 32)).astype(np.float32), name="noise")
    shape = Volume(scipy.io.loadmat(resource_path("shapes", "cube", "cube_0000.mat"))["voxel"], name="cube")
    noisy, cube = classify_volumes([noise, shape], rotations=1)
    assert noisy.out_of_domain is not None and "topology" in noisy.out_of_domain
    # the topology check flags it whatever the network says (the pose-2 model called it "sphere" at 0.63)
    assert cube.out_of_domain is None and cube.top[0][0] == "cube"
    explained = classify_with_heatmap(noise, rotations=1)  # the window's path: fitted with place_volume
    assert explained.out_of_domain is not None


def test_training_stores_the_domain_measured_on_validation(trained) -> None:
    from voxelstudio.ml.classifier_domain import Domain
    from voxelstudio.ml.classifiers import load_classifier

    result, data = trained
    stored = load_classifier(result.model_path).metadata["extra"]["domain"]
    assert stored["validation_grids"] == 10 and stored["rotations"] == 4
    domain = Domain.from_metadata({"domain": stored}, len(data.classes))
    assert domain.calibrated and 0.0 < domain.max_probability <= 0.6
    low, high = domain.euler_range
    assert low <= 0 < high  # every training shape's Euler characteristic lies within


def test_a_grid_of_another_shape_is_fitted_as_the_window_places_a_volume() -> None:
    from voxelstudio.core.volume import Volume
    from voxelstudio.tasks.volume_grid import place_volume

    flat = np.zeros((24, 24, 16), dtype=np.uint8)
    flat[4:20, 4:20, 2:14] = 1  # 16 x 16 x 12: not a cube, and not to be stretched into one
    grid, changed = fit_grid(flat, (16, 16, 16))
    assert changed
    np.testing.assert_array_equal(grid, place_volume(Volume(flat.astype(np.float32)), (16, 16, 16)).grid)
    extent = [int(np.ptp(np.nonzero(grid)[axis])) + 1 for axis in range(3)]
    assert extent[0] == extent[1] and abs(extent[2] - extent[0] * 12 / 16) <= 1  # proportions kept


def test_a_model_trained_without_augmentation_is_not_voted_over_turns_it_never_saw() -> None:
    from types import SimpleNamespace

    from voxelstudio.ml.classifier_config import ClassifierTrainConfig
    from voxelstudio.tasks.classify import _vote_rotations

    turned = ClassifierTrainConfig.for_arch("voxnet", vote_rotations=4)
    plain = dataclasses.replace(turned, augment=False)
    assert (turned.voting_views, plain.voting_views) == (4, 1)
    for config, views in ((turned, 4), (plain, 1)):
        loaded = SimpleNamespace(train_config=config, config=config.model, input_shape=(32, 32, 32), model=None)
        assert _vote_rotations(loaded, None, Path("m.keras")) == views
        assert _vote_rotations(loaded, 2, Path("m.keras")) == 2  # asked for: as asked


def test_zarr_grids_in_a_class_folder_are_loaded_with_the_others(tmp_path: Path) -> None:
    from voxelstudio.core.volume import Volume
    from voxelstudio.io import save_volume

    _write(tmp_path / "a_ball", "one.npy", _cube(hi=8))
    save_volume(Volume(_cube(hi=9).astype(np.float32)), tmp_path / "a_ball" / "two.zarr")  # a store is a folder
    _write(tmp_path / "b_cube", "one.npy", _cube())
    (tmp_path / "b_cube" / ".hidden.zarr").mkdir()  # hidden: left out

    data = load_class_folder(tmp_path, grid_shape=(16, 16, 16))

    assert data.counts() == {"a_ball": 2, "b_cube": 1} and [f.name for f in data.files] == [
        "one.npy",
        "two.zarr",
        "one.npy",
    ]
    np.testing.assert_array_equal(data.grids[1], _cube(hi=9))


def test_the_evaluation_report_says_which_order_the_confusion_columns_follow() -> None:
    from voxelstudio.cli.classify_commands import _format_report

    report = {"accuracy": 0.5, "count": 4, "rotations": 1, "per_class": {"cone": 0.5, "sphere": 0.5},
              "classes": ["cone", "cube", "sphere"], "confusion": [[1, 1, 0], [0, 0, 0], [1, 0, 1]]}  # fmt: skip
    lines = _format_report(report).splitlines()
    assert "both in the model's class order below" in lines[-4]
    assert [line.split()[0] for line in lines[-3:]] == ["cone", "cube", "sphere"]  # every model class, absent ones too
