"""Bayesian hyper-parameter search for voxel classifiers with optuna's seeded TPE sampler (the seed used GPyOpt).

Each trial trains with :func:`fit_classifier` on a small budget (the config's epochs, and its minutes split evenly
between trials) and is scored by the validation accuracy of its best epoch. The best trial's model is copied to
``out_path``; every trial's parameters and score go to ``<out stem>.search.json``.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from voxelstudio.core.atomic import temporary_directory, write_atomically, write_json_atomically
from voxelstudio.core.progress import CancelToken, Progress, ReportFn, null_report
from voxelstudio.ml.classifier_config import ClassifierTrainConfig
from voxelstudio.ml.classifier_training import ClassifierOutcome, fit_classifier
from voxelstudio.ml.fit import TrainingDiverged

BATCH_SIZES = (16, 32, 50, 64, 100, 150)
LEARNING_RATES = (1e-4, 1e-2)
DROPOUTS = (0.0, 0.6)


@dataclass(frozen=True)
class SearchOutcome:
    """The best trial (its outcome, config and parameters) and a record of every trial."""

    best: ClassifierOutcome | None
    best_config: ClassifierTrainConfig | None
    best_params: dict[str, Any]
    trials: list[dict[str, Any]]
    model_path: Path | None


def search_space(cfg: ClassifierTrainConfig, n_train: int) -> dict[str, Any]:
    """Learning rate (log scale), batch size (capped by the training set), dropout, and width (the config's width
    and its half and quarter)."""
    batches = sorted({min(b, n_train) for b in BATCH_SIZES})
    widths = sorted({cfg.model.width * f for f in (0.25, 0.5, 1.0)})
    return {"learning_rate": LEARNING_RATES, "batch_size": batches, "dropout": DROPOUTS, "width": widths}


def _suggest(trial: optuna.Trial, space: dict[str, Any]) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", *space["learning_rate"], log=True),
        "batch_size": trial.suggest_categorical("batch_size", space["batch_size"]),
        "dropout": trial.suggest_float("dropout", *space["dropout"]),
        "width": trial.suggest_categorical("width", space["width"]),
    }


def _apply(cfg: ClassifierTrainConfig, params: dict[str, Any], minutes: float | None) -> ClassifierTrainConfig:
    model = dataclasses.replace(cfg.model, dropout=params["dropout"], width=params["width"])
    return dataclasses.replace(
        cfg, model=model, learning_rate=params["learning_rate"], batch_size=params["batch_size"], minutes=minutes
    ).validate()


def _copy_atomically(source: Path, target: Path) -> None:
    write_atomically(target, lambda temporary: shutil.copyfile(source, temporary), overwrite=True)


def _state(outcome: ClassifierOutcome, score: float) -> str:
    if outcome.stopped_reason == "cancelled":
        return "stopped"
    return "complete" if math.isfinite(score) else "failed"


def search_classifier(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: ClassifierTrainConfig,
    classes: tuple[str, ...],
    *,
    trials: int,
    out_path: str | Path,
    report: ReportFn = null_report,
    cancel: CancelToken | None = None,
    on_trial: Callable[[dict[str, Any]], object] | None = None,
) -> SearchOutcome:
    """Run ``trials`` TPE trials (seeded with ``cfg.seed``) and keep the model with the best validation accuracy.

    Progress from each trial passes through with ``trial`` and ``trials`` added; ``on_trial`` receives each trial's
    record (as in the JSON, with its ``state``: "complete", "failed" or "stopped") when the trial ends. A cancel
    stops the running trial and the search; the best model so far stays at ``out_path``.
    """
    if trials < 1:
        raise ValueError(f"the search needs at least one trial, got {trials}")
    if len(val[1]) == 0:
        raise ValueError("the search needs validation data to score trials")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=max(1, min(10, trials // 2)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = search_space(cfg, len(train[1]))
    minutes = None if cfg.minutes is None else cfg.minutes / trials
    records: list[dict[str, Any]] = []
    best: tuple[float, ClassifierOutcome, ClassifierTrainConfig, dict[str, Any]] | None = None
    with temporary_directory(out_path.with_name(f"{out_path.stem}.search")) as workdir:
        for number in range(trials):
            if cancel is not None and cancel.cancelled:
                break
            trial = study.ask()
            params = _suggest(trial, space)
            trial_cfg = _apply(cfg, params, minutes)

            def trial_report(progress: Progress, number: int = number) -> None:
                values = {**progress.values, "trial": number + 1, "trials": trials}
                report(dataclasses.replace(progress, message=f"trial {number + 1}/{trials}: {progress.message}",
                                           values=values))  # fmt: skip

            path = Path(workdir) / f"trial-{number:03d}.keras"
            try:
                outcome = fit_classifier(
                    train, val, trial_cfg, classes, out_path=path, report=trial_report, cancel=cancel
                )
            except TrainingDiverged:  # a learning rate too high for this trial: a failed trial, not a failed search
                outcome = ClassifierOutcome({}, math.nan, math.nan, None, 0, "diverged", None)
            score = outcome.best_val_accuracy
            if math.isfinite(score):
                study.tell(trial, score)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            records.append(
                {
                    "trial": number + 1,
                    **params,
                    "val_accuracy": score if math.isfinite(score) else None,
                    "val_loss": outcome.best_val_loss if math.isfinite(outcome.best_val_loss) else None,
                    "epochs_run": outcome.epochs_run,
                    "state": _state(outcome, score),
                }
            )
            if on_trial is not None:
                on_trial(dict(records[-1]))
            if math.isfinite(score) and outcome.model_path is not None and (best is None or score > best[0]):
                _copy_atomically(outcome.model_path, out_path)
                best = (score, dataclasses.replace(outcome, model_path=out_path), trial_cfg, params)
            if outcome.stopped_reason == "cancelled":
                break
    record_path = out_path.with_name(f"{out_path.name.removesuffix('.keras')}.search.json")
    record = {"space": {k: list(v) for k, v in space.items()}, "trials": records,
              "best": None if best is None else {"val_accuracy": best[0], **best[3]}}  # fmt: skip
    write_json_atomically(record_path, record)
    if best is None:
        return SearchOutcome(None, None, {}, records, None)
    return SearchOutcome(best[1], best[2], best[3], records, out_path)
