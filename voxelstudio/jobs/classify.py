"""The Classify tab's training job as it runs in the worker process: train a classifier on a class-per-folder data
set, or search its hyper-parameters, reporting each finished search trial as a
:class:`~voxelstudio.jobs.events.TrialResult` event.

Qt-free (the child process imports it): only tasks and events.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.jobs.events import JobEvent, TrainingStep, TrialResult, as_event


def train_classifier_job(
    folder: Path,
    *,
    config: Any,
    out: Path,
    trials: int = 0,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
) -> Any:
    """Train ``config``'s classifier on ``folder`` (``trials`` > 0: an optuna search of that many trials, each
    reported as a TrialResult when it ends); returns the ClassifierTrainResult. A stopped search keeps the best
    model so far at ``out``."""
    from voxelstudio.tasks.classify_train import train_classifier_folder

    ended: list[TrialResult] = []

    def on_trial(record: dict[str, Any]) -> None:
        ended.append(TrialResult.from_record(record, trials))
        report(ended[-1])

    def forward(news: JobEvent | Progress) -> None:
        """A search's steps count the whole search (trials ended plus this one's part), for every progress bar."""
        event = as_event(news)
        if trials and isinstance(event, TrainingStep) and event.total:
            before = min(len(ended), trials - 1) * event.total
            event = dataclasses.replace(event, done=before + event.done, total=event.total * trials)
        report(event)

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return train_classifier_folder(folder, config=config, out=out, search_trials=trials, report=forward,
                                   cancel=cancel, on_trial=on_trial)  # fmt: skip
