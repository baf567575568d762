"""jobs.classify: a search's training steps count the whole search, so every progress bar climbs once."""

from __future__ import annotations

from voxelstudio.core.progress import Progress
from voxelstudio.jobs.classify import train_classifier_job
from voxelstudio.jobs.events import TrainingStep, TrialResult


def _fake_search(trials: int, steps: int):
    def train_classifier_folder(folder, *, config, out, search_trials, report, cancel, on_trial):
        assert search_trials == trials
        for trial in range(1, max(trials, 1) + 1):  # plain training: one run
            for step in range(1, steps + 1):
                values = {"epoch": 1, "epochs": 1, "step": step, "steps": steps}
                report(Progress(step, steps, "training", values=values))
            if trials:
                on_trial({"trial": trial, "params": {}, "val_accuracy": 0.5, "val_loss": 1.0, "epochs_run": 1})
        return "result"

    return train_classifier_folder


def test_a_search_reports_its_steps_over_all_trials(tmp_path, monkeypatch):
    monkeypatch.setattr("voxelstudio.tasks.classify_train.train_classifier_folder", _fake_search(3, 4))
    events = []
    result = train_classifier_job(tmp_path, config=None, out=tmp_path / "m.keras", trials=3, report=events.append)
    assert result == "result"
    steps = [(e.done, e.total) for e in events if isinstance(e, TrainingStep)]
    assert steps == [(done, 12) for done in range(1, 13)]  # one climb from 1/12 to 12/12, not three of 4
    assert [e.trial for e in events if isinstance(e, TrialResult)] == [1, 2, 3]


def test_plain_training_reports_its_steps_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr("voxelstudio.tasks.classify_train.train_classifier_folder", _fake_search(0, 4))
    events = []
    train_classifier_job(tmp_path, config=None, out=tmp_path / "m.keras", trials=0, report=events.append)
    assert [(e.done, e.total) for e in events] == [(done, 4) for done in range(1, 5)]
