"""The Train tab's jobs without Qt: the training job passes its starting model on; the adaptation job reports its
calibration as one typed event before the fine-tuning, and the fine-tuning's progress as the time budget spent."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.bead_microscope import TRUTH
from voxelstudio.core.progress import Progress
from voxelstudio.core.volume import Volume
from voxelstudio.jobs.adapt import AdaptOutcome, adapt_to_volume
from voxelstudio.jobs.events import CalibrationFound, Preview, ProgressEvent, TrainingStep, as_event
from voxelstudio.jobs.train import TrainingData, train_from_data
from voxelstudio.sim import simulate_pair
from voxelstudio.tasks.adapt import PREVIEW_SHARE
from voxelstudio.tasks.train import TrainResult


def test_training_job_starts_from_the_given_model(monkeypatch, tmp_path):
    calls = []

    def fake_train(pairs, **kwargs):
        calls.append(kwargs)
        return "trained"

    monkeypatch.setattr("voxelstudio.tasks.train.train_denoiser", fake_train)
    volume = Volume(np.zeros((8, 8, 4), np.float32), spacing=(0.1, 0.1, 0.2))
    config = type("Config", (), {"val_fraction": 0.2, "seed": 0})()
    init = tmp_path / "start.keras"
    loaded = (volume, volume)
    assert train_from_data(TrainingData(), loaded, config=config, out=tmp_path / "m.keras", init=init) == "trained"
    assert train_from_data(TrainingData(), loaded, config=config, out=tmp_path / "n.keras") == "trained"
    assert [call["init"] for call in calls] == [init, None]


@dataclass(frozen=True)
class _Budget:
    """Stands in for the fine-tuning's training config: only its time budget is read."""

    minutes: float


def test_adapt_job_reports_the_calibration_then_time_based_progress(monkeypatch, tmp_path):
    raw, _ = simulate_pair((112, 112, 32), TRUTH, seed=5)
    volume = Volume(raw, TRUTH.optics.voxel_size_um, name="beads")
    budget_s = 60.0
    fine_tune_minutes = []

    def fake_fine_tune(
        train_pairs,
        *,
        config,
        out,
        val_pairs,
        report,
        cancel,
        init,
        on_preview,
        preview_input,
        preview_share,
        correct_offset,
    ):
        """Stands in for the minutes of fine-tuning: one step a quarter into the budget, a preview of the scan being
        adapted to, then no model."""
        fine_tune_minutes.append(config.minutes)
        assert not correct_offset  # adapt measures where the model puts beads itself, on more pairs
        assert preview_share == PREVIEW_SHARE < 1  # previews of the whole scan are kept to a share of the time
        values = {"epoch": 1, "epochs": 100000, "step": 1, "steps": 4, "loss": 0.2, "eta_s": 45.0}
        report(Progress(1, 1_600_000, "training", values))
        on_preview(1, np.zeros(preview_input.shape, np.float32))
        return TrainResult(None, {}, math.nan, 1, "cancelled")

    monkeypatch.setattr("voxelstudio.tasks.adapt.fine_tune_config", lambda *args: (_Budget(args[2]), (32, 32, 32)))
    monkeypatch.setattr("voxelstudio.tasks.adapt.simulate_matched_pairs", lambda *args, **kwargs: [(None, None)])
    monkeypatch.setattr("voxelstudio.tasks.adapt.train_denoiser", fake_fine_tune)
    events = []
    outcome = adapt_to_volume(
        volume, out=tmp_path / "adapted.keras", minutes=budget_s / 60,
        report=lambda news: events.append(as_event(news)),
        calibrate_options={"na": 1.1, "wavelength_um": 0.52},  # given: a quick calibration
    )  # fmt: skip

    assert 0 < fine_tune_minutes[0] * 60 < budget_s  # what the calibration left of the budget
    kinds = [type(event) for event in events]
    assert kinds.count(CalibrationFound) == 1
    found = events[kinds.index(CalibrationFound)]
    assert kinds.index(CalibrationFound) > 0  # the calibration's stages come first
    assert all(kind is ProgressEvent for kind in kinds[: kinds.index(CalibrationFound)])
    assert found.beads_used >= 5 and found.converged
    fitted = {name: value for name, value, _sd in found.fitted}
    assert fitted["photons"] == pytest.approx(300.0, rel=0.25)
    assert found.spacing_um == pytest.approx(TRUTH.optics.voxel_size_um)
    assert found.measured_xz.ndim == 2 and found.measured_xz.shape == found.fitted_xz.shape
    assert found.measured_xz.max() == pytest.approx(1.0) and found.fitted_xz.max() == pytest.approx(1.0)
    assert found.measured_xy.shape == found.fitted_xy.shape == found.measured_xz.shape[:1] * 2  # square focal plane
    assert found.fitted_xy.max() == pytest.approx(1.0)
    assert found.measured_fwhm_um[1] > 2 * found.measured_fwhm_um[0]  # a bead is longer along z
    assert pickle.loads(pickle.dumps(found)) == found  # crosses the process boundary
    previews = [event for event in events if isinstance(event, Preview)]
    assert len(previews) == 1 and previews[0].array.shape == volume.shape  # the scan, not a simulated pair

    step = next(event for event in reversed(events) if not isinstance(event, Preview))
    assert isinstance(step, TrainingStep) and step.fraction == pytest.approx(0.25)  # 15 s of 60 s spent
    assert isinstance(outcome, AdaptOutcome) and outcome.calibration == found
    assert not outcome.completed and outcome.model_path is None


def test_adapt_job_refuses_a_bad_budget_before_calibrating(tmp_path):
    volume = Volume(np.zeros((16, 16, 8), np.float32), spacing=(0.1, 0.1, 0.2))
    with pytest.raises(ValueError, match="--minutes: must be positive"):
        adapt_to_volume(volume, out=tmp_path / "a.keras", minutes=0.0)
    assert not Path(tmp_path / "a.keras").exists()


def test_adapt_job_names_the_volume_it_cannot_calibrate_on(tmp_path):
    empty = Volume(np.random.default_rng(0).normal(100, 2, (32, 32, 8)).astype(np.float32), (0.1, 0.1, 0.2),
                   name="empty", source=tmp_path / "empty.tif")  # fmt: skip
    with pytest.raises(ValueError, match=r"^empty\.tif: .*bead"):
        adapt_to_volume(empty, out=tmp_path / "a.keras", minutes=1.0)
    assert not (tmp_path / "a.keras").exists()


@pytest.mark.parametrize("role", ["dark", "psf"])
def test_adapt_job_names_the_given_file_it_cannot_use(tmp_path, role):
    scan = Volume(np.zeros((32, 32, 8), np.float32), (0.1, 0.1, 0.2), name="scan", source=tmp_path / "scan.tif")
    bad = tmp_path / "folder" / f"{role}.npy"
    bad.parent.mkdir()
    np.save(bad, np.zeros((4, 4, 2), np.float32))  # too small for a dark stack, no light for a PSF
    with pytest.raises(ValueError, match=rf"^{role}\.npy: ") as raised:
        adapt_to_volume(scan, out=tmp_path / "a.keras", minutes=1.0, calibrate_options={role: str(bad)})
    assert "\n" not in str(raised.value) and "scan.tif" not in str(raised.value)
    assert not (tmp_path / "a.keras").exists()


def test_adapt_job_without_fine_tuning_returns_the_corrected_model(tmp_path):
    raw, _ = simulate_pair((112, 112, 32), TRUTH, seed=0)
    volume = Volume(raw, TRUTH.optics.voxel_size_um, name="scan")
    events = []
    outcome = adapt_to_volume(
        volume, out=tmp_path / "corrected.keras", minutes=1.0, fine_tune=False, report=events.append,
        calibrate_options={"na": 1.1, "wavelength_um": 0.52},
    )  # fmt: skip
    assert outcome.training is None and outcome.completed and outcome.model_path == tmp_path / "corrected.keras"
    assert outcome.model_path.exists() and outcome.bead_offset.startswith("Bead positions:")
    assert not any(isinstance(as_event(event), TrainingStep) for event in events)  # nothing was trained
    assert pickle.loads(pickle.dumps(outcome)).model_path == outcome.model_path  # crosses the process boundary
