"""tasks.train: pair checks, validation split, loading pairs from files/folders, an end-to-end tiny training."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from voxelstudio.core.progress import CancelToken
from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume
from voxelstudio.tasks.train import check_pairs, load_pairs, split_validation, train_denoiser


def blob_volumes(seed: int, shape=(20, 20, 12), name="v") -> tuple[Volume, Volume]:
    """Sparse Gaussian beads (target) and a blurred, noisy version (raw) as Volumes."""
    rng = np.random.default_rng(seed)
    target = ndimage.gaussian_filter((rng.random(shape) < 5e-3).astype(np.float32), 1.0)
    target /= max(float(target.max()), 1e-6)
    raw = ndimage.gaussian_filter(target, (1.5, 1.5, 3.0)) + 0.1 * rng.normal(size=shape)
    return Volume(raw, name=f"{name}_raw"), Volume(target, name=f"{name}_target")


def tiny_config(**overrides):
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig

    model = DenoiserConfig.for_arch("simple", filters=2, kernel=(3, 3, 3), n_layers=2)
    settings = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch_shape": (16, 16, 8), **overrides}
    return TrainConfig(model=model, **settings)


def test_shape_mismatch_names_both_volumes():
    raw = Volume(np.zeros((8, 8, 4)), name="scan1")
    target = Volume(np.zeros((8, 8, 5)), name="truth1")
    with pytest.raises(ValueError, match=r"scan1 \(8, 8, 4\) and truth1 \(8, 8, 5\)"):
        check_pairs([blob_volumes(0), (raw, target)])
    with pytest.raises(ValueError, match="no"):
        check_pairs([])


def test_targets_that_all_hold_one_value_are_named_before_training():
    def pair(name, value):
        return Volume(np.random.default_rng(0).random((8, 8, 4)), name=f"raw{name}"), Volume(
            np.full((8, 8, 4), value), name=f"truth{name}"
        )

    with pytest.raises(ValueError, match=r"^truth1: 0 everywhere; there is nothing to learn$"):
        check_pairs([pair(1, 0.0)])
    with pytest.raises(ValueError, match=r"^truth1 and the 2 other targets: 0.5 everywhere"):
        check_pairs([pair(1, 0.5), pair(2, 0.5), pair(3, 0.5)])
    check_pairs([pair(1, 0.0), pair(2, 1.0)])  # two levels: a range to learn
    check_pairs([pair(1, 0.0), blob_volumes(0)])


def test_validation_split_sizes_and_determinism():
    pairs = [blob_volumes(i, shape=(4, 4, 4), name=str(i)) for i in range(5)]
    assert [len(part) for part in split_validation(pairs[:1], 0.2, 0)] == [1, 0]
    assert [len(part) for part in split_validation(pairs[:2], 0.1, 0)] == [1, 1]
    assert [len(part) for part in split_validation(pairs, 0.4, 0)] == [3, 2]
    assert [len(part) for part in split_validation(pairs, 0.0, 0)] == [4, 1]
    first, second = split_validation(pairs, 0.2, 3), split_validation(pairs, 0.2, 3)
    assert [r.name for r, _ in first[1]] == [r.name for r, _ in second[1]]
    assert {r.name for r, _ in first[0] + first[1]} == {r.name for r, _ in pairs}


def write_pair_folders(tmp_path, stems, extra_target=None):
    raw_dir, target_dir = tmp_path / "raw", tmp_path / "target"
    raw_dir.mkdir()
    target_dir.mkdir()
    for i, stem in enumerate(stems):
        raw, target = blob_volumes(i)
        save_volume(raw, raw_dir / f"{stem}.mat")
        save_volume(target, target_dir / f"{stem}.npy")
    if extra_target:
        save_volume(blob_volumes(9)[1], target_dir / f"{extra_target}.mat")
    return raw_dir, target_dir


def test_load_pairs_matches_folders_by_stem(tmp_path):
    raw_dir, target_dir = write_pair_folders(tmp_path, ["b", "a"])
    pairs = load_pairs(raw_dir, target_dir)
    assert [(r.name, t.name) for r, t in pairs] == [("a", "a"), ("b", "b")]
    np.testing.assert_allclose(pairs[0][1].data, blob_volumes(1)[1].data, atol=1e-6)
    single = load_pairs(raw_dir / "a.mat", target_dir / "a.npy")
    assert len(single) == 1 and single[0][0].shape == (20, 20, 12)


def test_load_pairs_matches_volumes_by_name_whatever_their_format(tmp_path):
    """``scan.ome.tif`` pairs with ``scan.tif`` (both are "scan"), and a Zarr store, though a folder, is a volume."""
    raw, target = blob_volumes(3)
    (tmp_path / "raw").mkdir()
    (tmp_path / "target").mkdir()
    save_volume(raw, tmp_path / "raw" / "scan.ome.tif")
    save_volume(target, tmp_path / "target" / "scan.tif")
    save_volume(raw, tmp_path / "raw" / "deep.ome.zarr")
    save_volume(target, tmp_path / "target" / "deep.npy")
    pairs = load_pairs(tmp_path / "raw", tmp_path / "target")
    assert [r.metadata["format"].split("-")[0] for r, _ in pairs] == ["ome", "ome"]  # deep (a store), then scan
    assert [(r.name, t.name) for r, t in pairs] == [("deep", "deep"), ("scan", "scan")]
    single = load_pairs(tmp_path / "raw" / "deep.ome.zarr", tmp_path / "target" / "deep.npy")
    np.testing.assert_allclose(single[0][0].data, raw.data, atol=1e-6)


def test_validation_pairs_that_are_also_training_pairs_are_left_out_of_training():
    from voxelstudio.tasks.train import without_validation_pairs

    pairs = [blob_volumes(seed) for seed in (1, 2, 3, 4)]
    with pytest.warns(UserWarning, match="validation pairs that are also training pairs are left out of training"):
        kept = without_validation_pairs(pairs, [pairs[1], pairs[3]])
    assert [p[0].data.sum() for p in kept] == [pairs[0][0].data.sum(), pairs[2][0].data.sum()]
    assert without_validation_pairs(pairs[:1], pairs[:1]) == pairs[:1]  # the loaded pair alone: it validates too
    assert without_validation_pairs(pairs[:2], [blob_volumes(5)]) == pairs[:2]


def test_every_validation_pair_given_validates(tmp_path, monkeypatch):
    import voxelstudio.ml.training as training

    seen = []
    monkeypatch.setattr(training, "fit_denoiser", lambda train, val, config, **kwargs: seen.append(len(val)) or _stop())
    pairs = [blob_volumes(seed) for seed in (1, 2, 3)]
    with pytest.raises(_Stopped):
        train_denoiser(
            pairs, config=tiny_config(), out=tmp_path / "m.keras", val_pairs=[blob_volumes(7), blob_volumes(8)]
        )
    assert seen == [2]


class _Stopped(Exception):
    pass


def _stop():
    raise _Stopped


def test_load_pairs_reports_unmatched_and_mixed_inputs(tmp_path):
    raw_dir, target_dir = write_pair_folders(tmp_path, ["a"], extra_target="zz")
    with pytest.raises(ValueError, match=r"raw: no file matching zz"):
        load_pairs(raw_dir, target_dir)
    with pytest.raises(ValueError, match="two files or two folders"):
        load_pairs(raw_dir, target_dir / "a.npy")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_pairs(tmp_path / "nowhere", target_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no volume files"):
        load_pairs(tmp_path / "empty", target_dir)


def test_train_denoiser_end_to_end(tmp_path):
    pairs = [blob_volumes(i, name=str(i)) for i in range(3)]
    out = tmp_path / "model.keras"
    progress = []
    result = train_denoiser(pairs, config=tiny_config(), out=out, report=progress.append)
    assert result.model_path == out and out.exists()
    assert result.epochs_run == 2 and result.stopped_reason == "epochs"
    assert len(result.history["val_loss"]) == 2 and result.best_val_loss == min(result.history["val_loss"])
    steps = [p for p in progress if "epochs" in p.values]
    assert steps[-1].total == 4 and steps[-1].values["epochs"] == 2
    assert progress[-1].message == "measuring where the model puts beads"  # then the best model is measured
    offset = result.bead_offset  # measured on the validation pair (blobs too few to correct)
    assert offset is not None and offset.source == "validation" and not offset.corrects


def test_training_measures_bead_positions_on_its_validation_pairs_unless_stopped(tmp_path, monkeypatch):
    import voxelstudio.tasks.train as train

    measured = []
    monkeypatch.setattr(train, "correct_trained_model",
                        lambda path, val, cancel=None: measured.append((path, val)) or "offset")  # fmt: skip
    pairs, val = [blob_volumes(i, name=str(i)) for i in range(2)], [blob_volumes(5)]
    result = train_denoiser(pairs, config=tiny_config(epochs=1), out=tmp_path / "m.keras", val_pairs=val)
    assert result.bead_offset == "offset" and measured == [(result.model_path, val)]
    stop = CancelToken()  # Stop after the first epoch: its best model is kept, and the job ends at once

    def stop_after_an_epoch(progress) -> None:
        if progress.values.get("epochs", 0) >= 1:
            stop.cancel()

    result = train_denoiser(pairs, config=tiny_config(epochs=3), out=tmp_path / "m.keras", val_pairs=val,
                            cancel=stop, report=stop_after_an_epoch)  # fmt: skip
    assert result.stopped_reason == "cancelled" and result.model_path is not None
    assert result.bead_offset is None and len(measured) == 1


def test_a_stop_during_the_bead_measurement_keeps_the_trained_model_uncorrected(tmp_path):
    from voxelstudio.ml.persistence import load_model

    stop = CancelToken()
    said = []

    def stop_when_measuring(progress) -> None:  # Stop pressed once training is over, as the measurement starts
        said.append(progress.message)
        if progress.message == "measuring where the model puts beads":
            stop.cancel()

    pairs, val = [blob_volumes(i, name=str(i)) for i in range(2)], [blob_volumes(5)]
    out = tmp_path / "m.keras"
    result = train_denoiser(pairs, config=tiny_config(epochs=1), out=out, val_pairs=val, cancel=stop,
                            report=stop_when_measuring)  # fmt: skip
    assert "measuring where the model puts beads" in said
    assert result.stopped_reason == "cancelled" and result.model_path == out and result.bead_offset is None
    assert load_model(out).input_shift == (0.0, 0.0, 0.0)


def test_train_denoiser_with_explicit_validation_and_errors(tmp_path):
    pairs = [blob_volumes(0)]
    result = train_denoiser(
        pairs, config=tiny_config(epochs=1), out=tmp_path / "m.keras", val_pairs=[blob_volumes(5, shape=(24, 20, 10))]
    )
    assert "val_loss" in result.history
    with pytest.raises(ValueError, match=r"\.keras"):
        train_denoiser(pairs, config=tiny_config(), out=tmp_path / "m.h5")
    bad = (Volume(np.zeros((8, 8, 8)), name="r"), Volume(np.zeros((8, 8, 9)), name="t"))
    with pytest.raises(ValueError, match="shapes differ"):
        train_denoiser(pairs, config=tiny_config(), out=tmp_path / "m.keras", val_pairs=[bad])


def test_a_model_that_takes_the_voxel_size_trains_on_each_pairs_own_and_refuses_unknown_ones(tmp_path):
    import dataclasses

    from voxelstudio.ml.persistence import load_model

    config = tiny_config(epochs=1)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, spacing_input=True))
    pairs = [blob_volumes(i, name=str(i)) for i in range(3)]  # files without a voxel size (1 µm assumed)
    with pytest.raises(ValueError, match=r"0_raw: voxel size not known, .*--spacing-input"):
        train_denoiser(pairs, config=config, out=tmp_path / "unknown.keras")
    assert not (tmp_path / "unknown.keras").exists()
    sizes = [(0.1, 0.1, 0.2), (0.2, 0.2, 0.3), (0.1, 0.1, 0.15)]
    pairs = [(raw.replace(spacing=s), target.replace(spacing=s)) for (raw, target), s in zip(pairs, sizes, strict=True)]
    result = train_denoiser(pairs, config=config, out=tmp_path / "m.keras")
    trained = load_model(result.model_path).metadata["extra"]["spacing_range"]
    assert trained["lateral"] == pytest.approx([0.1, 0.2]) and trained["axial"] == pytest.approx([0.15, 0.3])
    assert len(result.history["val_loss"]) == 1


def test_fine_tuning_a_corrected_model_without_measuring_says_the_correction_is_not_carried_over(tmp_path):
    from voxelstudio.ml.persistence import load_model, save_model

    first = train_denoiser([blob_volumes(0)], config=tiny_config(epochs=1), out=tmp_path / "first.keras")
    loaded = load_model(first.model_path)
    corrected = tmp_path / "corrected.keras"
    save_model(loaded.model, corrected, train_config=loaded.train_config, normalizer=loaded.normalizer,
               input_shift=(0.0, 0.0, -0.6))  # fmt: skip
    with pytest.warns(UserWarning, match=r"corrected\.keras moved scans .* so it moves nothing: measure it with"):
        result = train_denoiser([blob_volumes(1)], config=tiny_config(epochs=1), out=tmp_path / "ft.keras",
                                init=corrected)  # one pair: nothing to validate on, nothing measured  # fmt: skip
    assert result.bead_offset is None and load_model(result.model_path).input_shift == (0.0, 0.0, 0.0)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_denoiser([blob_volumes(1)], config=tiny_config(epochs=1), out=tmp_path / "ft2.keras",
                       init=first.model_path)  # fmt: skip
    assert not [w for w in caught if "moved scans" in str(w.message)]  # from a model without a correction: nothing
