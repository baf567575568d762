"""Each kind of job has one handler: fake jobs that report every event type, then end each way a job can end."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.gui.conftest import wait_idle
from voxelstudio.core.errors import Cancelled
from voxelstudio.jobs.eta import EtaClock
from voxelstudio.jobs.events import (
    EpochResult,
    Preview,
    PreviewQuality,
    ProgressEvent,
    TileProgress,
    TrainingStep,
    TrialResult,
)

pytestmark = pytest.mark.gui


def _every_event(shape, end):
    """A fake job: one event of each kind a job reports (a preview of ``shape``), then ``end()``'s value."""

    def job(report, cancel):
        report(ProgressEvent(0, None, "loading the data"))
        report(TrainingStep(1, 4, "training", epoch=1, epochs=2, step=1, steps=2, loss=0.5, eta_s=3.0))
        report(EpochResult(2, 4, "validated", epoch=1, epochs=2, step=2, steps=2, loss=0.4, val_loss=0.3,
                           val_accuracy=0.6, val_psnr=21.5, validated=True))  # fmt: skip
        report(Preview(1, np.full(shape, 0.5, np.float32)))
        report(PreviewQuality(1, 1.8, 1.0))
        report(TrialResult(1, 2, {"learning_rate": 0.01, "batch_size": 16, "dropout": 0.2, "width": 0.5},
                           val_accuracy=0.6, val_loss=0.9, epochs_run=2))  # fmt: skip
        report(ProgressEvent(3, 4, "testing"))
        return end()

    return job


def _raise(exc):
    def end():
        raise exc

    return end


def _run(qtbot, session, name, job, handler):
    ended = []
    session.controller.jobs.job_ended.connect(lambda _name, outcome: ended.append(outcome))
    assert session.controller.jobs.start(name, job, handler) is not None
    wait_idle(qtbot, session)
    qtbot.waitUntil(lambda: bool(ended), timeout=10_000)
    return ended[-1]


TRAINED = SimpleNamespace(epochs_run=2, stopped_reason="epochs", best_val_loss=0.3, model_path=None, bead_offset=None)


def test_training_handler_draws_every_event_and_applies_the_result(qtbot, sample_session):
    controller, document, panel = sample_session.controller, sample_session.document, sample_session.window.train_panel
    raw = document.volume("raw")
    results = []
    job = _every_event(raw.shape, lambda: TRAINED)
    controller.training_started.emit(sample_session.window.train_panel.config())  # as controller.train does
    outcome = _run(
        qtbot, sample_session, "training", job, lambda: controller.training.prepare(raw, True, results.append)
    )
    assert outcome == "finished" and results == [TRAINED]
    assert panel.plot.val[0] == [1] and panel.quality.psnr == ([1], [21.5])  # the epoch result, from its fields
    assert panel.quality.ratio == ([1], [1.8]) and panel.quality.target_ratio == 1.0
    assert document.volume("prediction").name == "preview, epoch 1"  # the preview reached the predicted panel
    assert document.made_by("prediction") == {"method": "training preview", "epoch": 1}
    assert "2 epoch(s), all epochs done" in panel.progress.label.text()
    assert "Bead positions" not in panel.progress.label.text()
    assert sample_session.dialogs.errors == []


def test_a_training_whose_model_moved_beads_says_so(qtbot, sample_session, tmp_path):
    from voxelstudio.tasks.offset_correction import BeadOffset

    controller, document, panel = sample_session.controller, sample_session.document, sample_session.window.train_panel
    raw = document.volume("raw")
    (tmp_path / "m.keras").write_bytes(b"model")
    offset = BeadOffset((0.0, 0.0, 0.6), 34, (0.0, 0.0, -0.6), source="validation")
    trained = SimpleNamespace(**{**vars(TRAINED), "model_path": tmp_path / "m.keras", "bead_offset": offset})
    controller.training_started.emit(panel.config())
    _run(qtbot, sample_session, "training", _every_event(raw.shape, lambda: trained),
         lambda: controller.training.prepare(raw, True, lambda _result: None))  # fmt: skip
    text = panel.progress.label.text()
    assert "model m.keras kept. Bead positions: the model moved beads by (y, x, z) +0.00, +0.00, +0.60" in text
    assert "on 34 validation beads; predictions move the scan by +0.00, +0.00, -0.60" in text
    assert text.endswith("Denoise to see its corrected prediction (the previews were the network's alone).")
    assert document.volume("prediction") is None  # the network's last preview, 0.6 planes off: taken back
    uncorrected = SimpleNamespace(**{**vars(trained), "bead_offset": BeadOffset((0.0, 0.0, 0.1), 34, (0.0,) * 3)})
    controller.training_started.emit(panel.config())
    _run(qtbot, sample_session, "training", _every_event(raw.shape, lambda: uncorrected),
         lambda: controller.training.prepare(raw, True, lambda _result: None))  # fmt: skip
    assert document.volume("prediction").name == "preview, epoch 1"  # the model predicts as its preview did


def test_a_failed_training_run_clears_its_draft_preview(qtbot, sample_session):
    controller, document, viewports = (
        sample_session.controller,
        sample_session.document,
        sample_session.window.viewports,
    )
    raw = document.volume("raw")
    previews = []
    document.volume_changed.connect(
        lambda role: previews.append(viewports.is_draft("prediction")) if role == "prediction" else None
    )
    job = _every_event(raw.shape, _raise(ValueError("the GPU fell over")))
    outcome = _run(qtbot, sample_session, "training", job, lambda: controller.training.prepare(raw, True, print))
    assert outcome == "failed"
    assert previews == [True, False]  # drawn as a draft while it ran, then taken out
    assert document.volume("prediction") is None and document.made_by("prediction") is None
    assert not viewports.is_draft("prediction") and not viewports.is_draft("residual")
    assert [message for _, message, _ in sample_session.dialogs.errors] == ["the GPU fell over"]
    assert "Failed" in sample_session.window.train_panel.progress.label.text()


def test_a_failed_run_leaves_an_earlier_prediction_alone(qtbot, sample_session):
    controller, document = sample_session.controller, sample_session.document
    raw = document.volume("raw")
    earlier = raw.replace(name="denoised earlier", source=None)
    document.set_volume("prediction", earlier)
    job = _every_event((2, 2, 2), _raise(ValueError("no")))  # a preview of another shape is not shown
    assert (
        _run(qtbot, sample_session, "training", job, lambda: controller.training.prepare(raw, True, print)) == "failed"
    )
    assert document.volume("prediction") is earlier


@pytest.mark.parametrize("saved", [True, False])
@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (Cancelled("training"), "cancelled"),
        (ValueError("training diverged: ... (the model of epoch 1 is kept)"), "failed"),
    ],
)  # how the runner ends a run past its grace period; a run that diverged
def test_a_training_run_ended_without_a_result_hands_on_its_best_model_or_takes_its_preview_back(
    qtbot, sample_session, tmp_path, saved, error, outcome
):
    controller, document = sample_session.controller, sample_session.document
    document.set_model_path(None)
    raw = document.volume("raw")
    out = tmp_path / "denoiser.keras"
    if saved:  # the best model so far, written whole at an improvement before the run ended
        out.write_bytes(b"a model")
    job = _every_event(raw.shape, _raise(error))

    def handler():
        return controller.training.prepare(raw, True, print, out=out, on_kept=controller._kept)

    assert _run(qtbot, sample_session, "training", job, handler) == outcome

    if saved:
        assert document.model_path == out and document.volume("prediction").name == "preview, epoch 1"
    else:
        assert document.model_path is None and document.volume("prediction") is None


@pytest.mark.parametrize("end", ["finished", "failed", "cancelled"])
def test_denoising_handler(qtbot, sample_session, end):
    controller, panel = sample_session.controller, sample_session.window.denoise_panel
    results = []
    ends = {
        "finished": lambda: "denoised",
        "failed": _raise(ValueError("bad model")),
        "cancelled": _raise(Cancelled("denoising")),
    }
    job = _every_event((4, 4, 4), ends[end])
    texts = []
    controller.denoising.progressed.connect(lambda event: texts.append(panel.progress.label.text()))
    outcome = _run(
        qtbot, sample_session, "denoising", job, lambda: controller.denoising.arm(results.append, "Denoising…")
    )
    assert outcome == end and results == (["denoised"] if end == "finished" else [])
    assert texts[0] == "loading the data" and texts[-1] == "testing 3/4"  # every progress event, steps included
    assert len(texts) == 4 and sample_session.document.volume("prediction") is None  # previews are not its business
    assert panel.progress.label.text() == {"finished": "Done.", "failed": "Failed (see the message).",
                                           "cancelled": "Stopped."}[end]  # fmt: skip
    assert len(sample_session.dialogs.errors) == (1 if end == "failed" else 0)


def test_classifier_training_handler(qtbot, sample_session):
    controller, panel = sample_session.controller, sample_session.window.classify_panel
    result = SimpleNamespace(epochs_run=2, stopped_reason="epochs", best_val_accuracy=0.6, test_accuracy=None,
                             model_path=None, trials=[], refit_outcome=None)  # fmt: skip
    job = _every_event((4, 4, 4), lambda: result)
    seen = []
    outcome = _run(
        qtbot, sample_session, "classifier training", job, lambda: controller.classifiers.training.arm(seen.append)
    )
    assert outcome == "finished" and seen == [result]
    assert panel.accuracy_plot.points == ([1], [0.6])  # one point per validated epoch, from its field
    assert panel.results.currentWidget() is panel.accuracy_plot
    assert "2 epoch(s), all epochs done; validation accuracy 60.0%" in panel.progress.label.text()


def test_classifier_evaluation_and_classification_handlers(qtbot, sample_session):
    controller, panel = sample_session.controller, sample_session.window.classify_panel
    report = {"classes": ["a", "b"], "confusion": [[2, 0], [1, 1]], "accuracy": 0.75, "count": 4, "rotations": 1}
    job = _every_event((4, 4, 4), lambda: report)
    assert _run(qtbot, sample_session, "evaluation", job, lambda: controller.classifiers.evaluation.arm()) == "finished"
    assert (
        panel.confusion.matrix.tolist() == [[2, 0], [1, 1]]
        and "Evaluated: accuracy 75.0%" in panel.progress.label.text()
    )
    classified = SimpleNamespace(classes=["a", "b"], probabilities=[0.2, 0.8], predicted="b", rotations=1,
                                 out_of_domain=None)  # fmt: skip
    job = _every_event((4, 4, 4), lambda: classified)
    arm = controller.classifiers.classification.arm
    assert _run(qtbot, sample_session, "classification", job, lambda: arm()) == "finished"
    assert panel.results.currentWidget() is panel.bars
    assert "Most likely: <b>b</b> (80%, 1 rotation(s))" in panel.result_label.text()
    assert panel.bars.values == {"a": 0.2, "b": 0.8} and sample_session.dialogs.errors == []
    unlike = SimpleNamespace(**{**vars(classified), "out_of_domain": "its shape's topology is unlike the training"})
    job = _every_event((4, 4, 4), lambda: unlike)
    assert _run(qtbot, sample_session, "classification", job, lambda: arm()) == "finished"
    text = panel.result_label.text()
    assert "Unlike the classes this model knows" in text and "topology" in text and "Most likely" not in text


@pytest.mark.parametrize("end", ["finished", "cancelled"])
def test_classifier_search_handler_fills_the_trials_table(qtbot, sample_session, end):
    controller, panel = sample_session.controller, sample_session.window.classify_panel
    result = SimpleNamespace(epochs_run=2, stopped_reason="epochs", best_val_accuracy=0.6, test_accuracy=None,
                             model_path=None, trials=[{"trial": 1}], refit_outcome=None)  # fmt: skip
    panel.trials.setValue(2)
    steps = []
    controller.classifiers.search.step.connect(lambda _step: steps.append((panel.progress.label.text(),
                                                                          panel.progress.bar.value())))  # fmt: skip
    job = _every_event((4, 4, 4), (lambda: result) if end == "finished" else _raise(Cancelled("search")))
    seen = []
    assert _run(qtbot, sample_session, "search", job, lambda: controller.classifiers.search.arm(seen.append)) == end
    table = panel.trials_table
    assert table.rowCount() == 1 and [table.item(0, c).text() for c in range(table.columnCount())] == [
        "1", "60.0%", "2", "0.01", "16", "0.2", "0.5", "complete"]  # fmt: skip
    assert table.item(0, 0).font().bold() and table.best_row() == 0
    assert panel.results.currentWidget() is table
    # the job counts a search's steps over all trials (tests/jobs/test_classify_job.py); the panel shows them as told
    assert steps == [("trial 1/2 · epoch 1/2 · step 1/2 · loss 0.5 · ETA 0:03", 25)]
    if end == "finished":
        assert seen == [result] and "1 trial(s), best: 2 epoch(s)" in panel.progress.label.text()
    else:
        assert seen == [] and panel.progress.label.text() == "Stopped."


@pytest.mark.parametrize("kind", ["denoise", "classify"])
def test_tiles_done_of_total_with_the_time_left(qtbot, sample_session, kind):
    controller, window = sample_session.controller, sample_session.window
    panel, handler = {"denoise": (window.denoise_panel, controller.denoising),
                      "classify": (window.classify_panel, controller.classifiers.classification)}[kind]  # fmt: skip
    ticks = iter(range(0, 1000, 10))
    panel.progress.eta = EtaClock(clock=lambda: next(ticks))  # 10 s between reports

    def job(report, cancel):
        report(ProgressEvent(0, None, "loading the model"))
        for tile in range(1, 5):
            report(TileProgress(tile, 4, "tiles", tile=tile, tiles=4))
        report(ProgressEvent(2, 8, "classifying"))  # a new phase starts its own estimate
        report(ProgressEvent(4, 8, "classifying"))
        return SimpleNamespace(classes=["a", "b"], probabilities=[0.2, 0.8], predicted="b", rotations=1,
                               out_of_domain=None)  # fmt: skip

    texts = []
    handler.progressed.connect(lambda _event: texts.append(panel.progress.label.text()))
    assert _run(qtbot, sample_session, kind, job, lambda: handler.arm(None, "Working…")) == "finished"
    assert texts == ["loading the model", "tile 1/4", "tile 2/4, ~20 s left", "tile 3/4, ~10 s left",
                     "tile 4/4, ~1 s left", "classifying 2/8", "classifying 4/8, ~20 s left"]  # fmt: skip
