"""``adapt``: calibrate on a raw scan, simulate matched pairs, fine-tune; the result beats its input (no targets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.bead_microscope import TRUTH
from voxelstudio.core.errors import VolumeWriteError
from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume
from voxelstudio.metrics import psnr
from voxelstudio.sim import SimParams, simulate_pair
from voxelstudio.tasks.adapt import (
    FINE_TUNE_LOSS,
    FINE_TUNE_PATIENCE,
    FINE_TUNE_STEPS,
    adapt_files,
    adapted_voxel_size,
)
from voxelstudio.tasks.denoise import denoise_volume
from voxelstudio.tasks.offset_correction import MIN_OFFSET_BEADS


def test_adapt_end_to_end_beats_its_input_and_stores_the_calibration(tmp_path: Path) -> None:
    raw, target = simulate_pair((112, 112, 32), TRUTH, seed=5)
    scan = save_volume(Volume(raw, TRUTH.optics.voxel_size_um), tmp_path / "scan.tif")
    out = tmp_path / "adapted.keras"
    with pytest.warns(UserWarning, match=r"the 9-s budget, less .* leaves the fine-tuning under its minimum of 6 s"):
        result = adapt_files(  # 9 s: less than the 15 s kept for saving, so the run says it ends late
            [scan],
            out,
            minutes=0.15,
            pairs=2,
            na=1.1,
            wavelength_um=0.52,  # NA given: a quick calibration
        )
    assert result.training.model_path == out and out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapted.keras", "scan.tif"]  # no checkpoint left beside it
    assert result.calibration.params.photons == pytest.approx(300.0, rel=0.25)

    from voxelstudio.ml.persistence import load_model

    adapted = load_model(out)
    assert adapted.train_config is not None
    assert {key: getattr(adapted.train_config.loss, key) for key in FINE_TUNE_LOSS} == FINE_TUNE_LOSS
    recipe = adapted.train_config  # short epochs, with the patience the bundled recipe's long ones had in batches
    assert recipe.steps_per_epoch == FINE_TUNE_STEPS == 4
    assert (recipe.lr_patience, recipe.early_stopping_patience) == FINE_TUNE_PATIENCE
    assert recipe.lr_patience * FINE_TUNE_STEPS == 15 * 16 and recipe.early_stopping_patience * FINE_TUNE_STEPS == 1600
    adaptation = adapted.metadata["extra"]["adaptation"]
    assert SimParams.from_dict(adaptation["sim_params"]) == result.calibration.params
    bead = np.array(adaptation["measured_bead"]["data"]).reshape(adaptation["measured_bead"]["shape"])
    assert bead.max() == pytest.approx(1.0) and adaptation["report"]["beads_used"] >= 5
    assert adapted_voxel_size(adapted.metadata) == pytest.approx(TRUTH.optics.voxel_size_um)  # what export-model reads
    offset = result.bead_offset  # measured on simulated beads; what prediction applies is in the file
    assert offset is not None and offset.beads >= MIN_OFFSET_BEADS and adaptation["bead_offset"] == offset.to_dict()
    assert adapted.input_shift == offset.input_shift and offset.flipped_input_shift is not None
    assert offset.spacing_um == pytest.approx(TRUTH.optics.voxel_size_um)  # scans of other voxel sizes: in µm
    assert adapted.shift_for(True) == offset.flipped_input_shift  # what the z-flipped views of --tta are moved by

    prediction = denoise_volume(Volume(raw, TRUTH.optics.voxel_size_um), model_path=out).prediction.data
    assert psnr(prediction, target) > psnr(raw, target) + 3.0  # PSNR after an affine fit onto the target


def test_adapt_rejects_bad_arguments_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end in \.keras"):
        adapt_files([tmp_path / "x.tif"], tmp_path / "m.h5")
    with pytest.raises(ValueError, match="no such model file"):
        adapt_files([tmp_path / "x.tif"], tmp_path / "m.keras", init=tmp_path / "none.keras")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VolumeWriteError, match="does not exist"):
        adapt_files([tmp_path / "x.tif"], tmp_path / "missing" / "m.keras")
    from voxelstudio.tasks.classify import default_classifier_path

    with pytest.raises(ValueError, match="is a voxel classifier; adapt fine-tunes a denoiser"):
        adapt_files([tmp_path / "x.tif"], tmp_path / "m.keras", init=default_classifier_path())
    assert list(tmp_path.iterdir()) == []
    import keras  # a plain Keras file: no recipe to fine-tune with, found before the scans are read

    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((8, 8, 8, 1)), keras.layers.Conv3D(1, 3, padding="same")]).save(plain)
    with pytest.raises(ValueError, match=r"plain\.keras: not a VoxelStudio denoiser \(no training config\)"):
        adapt_files([tmp_path / "x.tif"], tmp_path / "m.keras", init=plain)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.keras"]


def test_a_stop_after_the_calibration_writes_nothing_when_only_correcting(tmp_path: Path) -> None:
    from voxelstudio.core.errors import Cancelled
    from voxelstudio.core.progress import CancelToken
    from voxelstudio.tasks.adapt import adapt_volumes

    raw, _ = simulate_pair((112, 112, 32), TRUTH, seed=5)
    out, token = tmp_path / "corrected.keras", CancelToken()
    measuring = []

    def stop_while_measuring(progress) -> None:  # Stop pressed as the measurement starts
        if "measuring where the model puts beads" in progress.message:
            measuring.append(progress)
            token.cancel()

    with pytest.raises(Cancelled):
        adapt_volumes([Volume(raw, TRUTH.optics.voxel_size_um)], out, fine_tune=False, report=stop_while_measuring,
                      cancel=token, na=1.1, wavelength_um=0.52)  # fmt: skip
    assert measuring and list(tmp_path.iterdir()) == []


def test_the_offset_is_measured_on_as_many_pairs_as_hold_enough_beads() -> None:
    from voxelstudio.tasks.adapt import OFFSET_BEADS, OFFSET_PAIRS, offset_pair_count

    shape = (96, 96, 48)
    assert offset_pair_count(1e-4, shape) == OFFSET_PAIRS[0] == 3  # 44 beads a pair: the fewest pairs do
    count = offset_pair_count(2e-5, shape)  # 8.8 a pair
    assert 2e-5 * np.prod(shape) * count >= OFFSET_BEADS > 2e-5 * np.prod(shape) * (count - 1)
    assert offset_pair_count(1e-6, shape) == offset_pair_count(0.0, shape) == OFFSET_PAIRS[1]  # at most
