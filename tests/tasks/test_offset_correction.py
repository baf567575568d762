"""Where a trained denoiser puts beads: measured on pairs whose truth is known, corrected by an input shift that
the model file carries (adapt measures on simulated pairs, training on its validation pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.bead_microscope import TRUTH
from voxelstudio.core.volume import Volume
from voxelstudio.sim import simulate_pair
from voxelstudio.tasks.offset_correction import (
    METADATA_KEY,
    MIN_CORRECTED_OFFSET,
    MIN_OFFSET_BEADS,
    bead_offset_of,
    correct_trained_model,
)


def _shifted_pairs(by: tuple[float, float, float]) -> tuple[list[tuple[Volume, Volume]], dict[int, np.ndarray]]:
    """Simulated (raw, target) pairs, and for each raw the target moved by ``by``: a stand-in model that puts every
    bead ``by`` voxels from where it is."""
    from voxelstudio.core.subvoxel import translate

    pairs, answers = [], {}
    for seed in range(2):
        raw, target = simulate_pair((96, 96, 32), TRUTH, seed=seed)
        pairs.append((Volume(raw, TRUTH.optics.voxel_size_um), Volume(target, TRUTH.optics.voxel_size_um)))
        answers[id(pairs[-1][0])] = translate(target, by)
    return pairs, answers


@pytest.mark.parametrize(
    ("by", "corrected"), [((0.0, 0.0, 0.6), (0.0, 0.0, -0.6)), ((0.0, 0.1, -0.4), (0.0, 0.0, 0.4))]
)
def test_a_model_that_moves_beads_gets_the_shift_that_puts_them_back(by, corrected) -> None:
    pairs, answers = _shifted_pairs(by)
    offset = bead_offset_of(lambda raw: answers[id(raw)], pairs)
    assert offset.beads >= MIN_OFFSET_BEADS
    assert offset.measured == pytest.approx(by, abs=0.06)
    assert offset.input_shift == pytest.approx(corrected, abs=0.06)
    assert offset.input_shift[1] == 0.0  # 0.1 voxel: under MIN_CORRECTED_OFFSET, left alone
    assert "predictions move the scan by" in offset.summary()


def test_a_model_that_keeps_beads_in_place_is_not_corrected() -> None:
    pairs, answers = _shifted_pairs((0.0, 0.0, 0.0))
    offset = bead_offset_of(lambda raw: answers[id(raw)], pairs)
    assert offset.input_shift == (0.0, 0.0, 0.0)
    assert max(abs(v) for v in offset.measured) < MIN_CORRECTED_OFFSET
    assert offset.summary().startswith("Bead positions: within")


def test_too_few_beads_are_not_corrected() -> None:
    pairs, answers = _shifted_pairs((0.0, 0.0, 0.6))
    cut = [(Volume(raw.data[:24, :24], raw.spacing), Volume(t.data[:24, :24], t.spacing)) for raw, t in pairs]
    answers = {id(raw): answers[id(full)][:24, :24] for (raw, _), (full, _) in zip(cut, pairs, strict=True)}
    offset = bead_offset_of(lambda raw: answers[id(raw)], cut, "validation")
    assert 0 < offset.beads < MIN_OFFSET_BEADS and offset.input_shift == (0.0, 0.0, 0.0) and not offset.corrects
    assert offset.summary().startswith(f"Bead positions: not corrected ({offset.beads} validation beads")


def _plane_shifting_model(folder, planes_down: int):
    """A model file whose network moves its input ``planes_down`` planes towards z = 0 (one 1x1x3 convolution
    with a one-hot kernel): a stand-in for a trained model that puts every bead a plane off."""
    from voxelstudio.core.normalize import PercentileNormalizer
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig
    from voxelstudio.ml.denoisers import build_denoiser
    from voxelstudio.ml.persistence import save_model

    cfg = TrainConfig(model=DenoiserConfig(arch="simple", filters=1, kernel=(1, 1, 3), n_layers=1))
    model = build_denoiser(cfg.model)
    kernel = np.zeros((1, 1, 3, 1, 1), np.float32)
    kernel[0, 0, 1 + planes_down] = 1.0  # output[z] = input[z + planes_down]
    model.get_layer("conv1_conv").set_weights([kernel, np.zeros(1, np.float32)])
    model.get_layer("output").set_weights([np.ones((1, 1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    path = folder / "shifting.keras"
    save_model(model, path, train_config=cfg, normalizer=PercentileNormalizer(), extra={"kept": 1})
    return path


def test_a_trained_model_that_moves_beads_is_corrected_in_its_file(tmp_path) -> None:
    from voxelstudio.metrics.bead_offset import bead_shifts, median_offset
    from voxelstudio.ml.inference import predict_volume
    from voxelstudio.ml.persistence import load_model

    path = _plane_shifting_model(tmp_path, 1)
    spacing = TRUTH.optics.voxel_size_um
    pairs = []
    for seed in range(2):  # the targets as their own raw scans: all the model changes is where the beads are
        _, target = simulate_pair((96, 96, 32), TRUTH, seed=seed)
        pairs.append((Volume(target, spacing), Volume(target, spacing)))
    offset = correct_trained_model(path, pairs)
    assert offset.source == "validation" and offset.beads >= MIN_OFFSET_BEADS and offset.corrects
    assert offset.measured == pytest.approx((0.0, 0.0, -1.0), abs=0.06)
    assert offset.input_shift == pytest.approx((0.0, 0.0, 1.0), abs=0.06)
    loaded = load_model(path)
    assert loaded.input_shift == offset.input_shift and loaded.shift_for(True) == offset.flipped_input_shift
    assert loaded.shift_spacing == pytest.approx(spacing)  # the voxels the shift counts, for scans of other sizes
    assert loaded.metadata["extra"] == {"kept": 1, METADATA_KEY: offset.to_dict()}  # the rest of the metadata kept
    raw, target = pairs[0]
    corrected = predict_volume(loaded, raw.data, spacing=spacing)[0]  # prediction applies the stored shift
    assert np.abs(median_offset(bead_shifts(corrected, target.data, spacing))).max() < 0.1


def test_a_model_that_keeps_beads_in_place_is_left_as_it_was(tmp_path) -> None:
    path = _plane_shifting_model(tmp_path, 0)
    before = path.read_bytes()
    _, target = simulate_pair((96, 96, 32), TRUTH, seed=0)
    volume = Volume(target, TRUTH.optics.voxel_size_um)
    offset = correct_trained_model(path, [(volume, volume)])
    assert not offset.corrects and max(abs(v) for v in offset.measured) < 0.1
    assert path.read_bytes() == before


def test_the_summary_names_a_shift_of_the_flipped_views_alone() -> None:
    from voxelstudio.tasks.offset_correction import BeadOffset

    offset = BeadOffset((0.0, 0.0, 0.1), 40, (0.0, 0.0, 0.0), (0.0, 0.0, 0.7), (0.0, 0.0, -0.7))
    assert offset.corrects and offset.summary().startswith("Bead positions: within 0.25 voxel")
    assert offset.summary().endswith("Test-time augmentation's z-flipped views are moved by +0.00, +0.00, -0.70.")
    same = BeadOffset((0.0, 0.0, 0.5), 40, (0.0, 0.0, -0.5), (0.0, 0.0, 0.5), (0.0, 0.0, -0.5))
    assert "Test-time" not in same.summary()
    plain_only = BeadOffset((0.0, 0.0, 0.3), 40, (0.0, 0.0, -0.3), (0.0, 0.0, 0.2), (0.0, 0.0, 0.0))
    assert plain_only.summary().endswith("Test-time augmentation's z-flipped views are not moved.")  # half the views


def test_pairs_of_several_voxel_sizes_are_measured_in_um() -> None:
    """A model that puts beads 0.12 µm deep: 0.6 planes of 0.2 µm, 0.3 of 0.4 µm; measured as 0.4 planes of the
    pairs' median 0.3 µm, which scans of any z step are then moved by in µm."""
    from voxelstudio.core.subvoxel import translate

    pairs, answers = [], {}
    for seed, z_step in enumerate((0.2, 0.4)):
        raw, target = simulate_pair((96, 96, 32), TRUTH, seed=seed)
        spacing = (0.1, 0.1, z_step)
        pairs.append((Volume(raw, spacing), Volume(target, spacing)))
        answers[id(pairs[-1][0])] = translate(target, (0.0, 0.0, 0.12 / z_step))
    offset = bead_offset_of(lambda raw: answers[id(raw)], pairs)
    assert offset.spacing_um == (0.1, 0.1, 0.3) and offset.to_dict()["spacing_um"] == [0.1, 0.1, 0.3]
    assert offset.measured[2] == pytest.approx(0.4, abs=0.04) and offset.input_shift[2] == pytest.approx(-0.4, abs=0.04)
    unknown = [(Volume(raw.data), Volume(target.data)) for raw, target in pairs]  # files without a voxel size
    answers.update({id(u[0]): answers[id(p[0])] for u, p in zip(unknown, pairs, strict=True)})
    plain = bead_offset_of(lambda raw: answers[id(raw)], unknown)
    assert plain.spacing_um is None and "spacing_um" not in plain.to_dict()
