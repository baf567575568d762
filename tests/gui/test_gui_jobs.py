"""Long jobs from the window: the Richardson–Lucy baseline, metrics, Stop, and closing while a job runs."""

from __future__ import annotations

import time

import pytest

from tests.gui.conftest import wait_idle

pytestmark = pytest.mark.gui


def test_deconvolution_fills_the_prediction_and_refreshes_metrics(qtbot, sample_session):
    window, document = sample_session.window, sample_session.document
    ended = []
    sample_session.controller.jobs.job_ended.connect(lambda name, outcome: ended.append((name, outcome)))
    window.denoise_panel.iterations.setValue(3)
    window.denoise_panel.deconvolve_button.click()
    assert sample_session.controller.busy and not window.action_map["train"].isEnabled()
    with qtbot.waitSignal(document.metrics_changed, timeout=120_000):
        pass
    wait_idle(qtbot, sample_session)
    assert ended == [("deconvolution", "finished"), ("metrics", "finished")]
    prediction = document.volume("prediction")
    assert prediction.shape == document.volume("raw").shape
    window.viewports.flush()
    assert window.viewports.panels["prediction"].volume is prediction
    table = window.metrics_panel.values()
    assert set(table) >= {"PSNR (dB)", "SSIM", "Bead F1", "FWHM axial / lateral"}
    raw_ratio, predicted_ratio, target_ratio = (float(v) for v in table["FWHM axial / lateral"])
    assert target_ratio == pytest.approx(1.0, abs=0.2) and raw_ratio > 1.5 and predicted_ratio > 0
    assert window.action_map["train"].isEnabled() and window.action_map["export_prediction"].isEnabled()
    assert sample_session.document.made_by("prediction")["iterations"] == 3


def test_stop_ends_a_running_job_and_reenables_the_ui(qtbot, sample_session):
    window, controller = sample_session.window, sample_session.controller
    window.denoise_panel.iterations.setValue(500)
    progressed = []
    controller.jobs.job_event.connect(lambda event: progressed.append(event.done) if hasattr(event, "done") else None)
    window.denoise_panel.deconvolve_button.click()
    qtbot.waitUntil(lambda: len(progressed) >= 3, timeout=60_000)
    with qtbot.waitSignal(controller.jobs.job_ended, timeout=30_000) as ended:
        window.action_map["stop"].trigger()
    assert ended.args == ["deconvolution", "cancelled"]
    assert not controller.busy and window.denoise_panel.deconvolve_button.isEnabled()
    assert not window.action_map["stop"].isEnabled()
    assert sample_session.dialogs.errors == []  # a stop the user asked for is not an error


def test_a_job_that_cannot_stop_offers_no_stop_and_finishes(qtbot, sample_session, monkeypatch):
    """Metrics never check a cancel token: Stop is not offered (nor its Esc), and a stop asked for anyway says why
    instead of pretending."""
    import threading

    from voxelstudio.jobs import work

    window, controller = sample_session.window, sample_session.controller
    document = sample_session.document
    document.set_volume("prediction", document.volume("target"))
    wait_idle(qtbot, sample_session)
    release, real_evaluate = threading.Event(), work.evaluate

    def held_evaluate(*args):
        task = real_evaluate(*args)
        return lambda report, cancel: (release.wait(30), task(report, cancel))[1]

    monkeypatch.setattr(work, "evaluate", held_evaluate)
    statuses = []
    controller.jobs.status.connect(statuses.append)
    job = controller.evaluate()
    assert controller.busy and not window.action_map["stop"].isEnabled()
    controller.stop()
    assert statuses[-1] == "Metrics cannot be stopped; it ends on its own in a moment."
    assert not job.cancel_token.cancelled
    with qtbot.waitSignal(controller.jobs.job_ended, timeout=30_000) as ended:
        release.set()
    assert ended.args == ["metrics", "finished"] and document.metrics


def test_closing_during_a_job_asks_then_cancels_it(qtbot, session, dialogs):
    controller = session.controller
    controller.open_sample()
    wait_idle(qtbot, session)
    job = controller.deconvolve(iterations=500)
    qtbot.waitUntil(lambda: job.running, timeout=10_000)
    dialogs.answer = False
    assert not session.window.close()
    assert len(dialogs.questions) == 1 and "still running" in dialogs.questions[0]
    assert session.window.isVisible() and controller.busy
    dialogs.answer = True
    started = time.monotonic()
    session.window.close()
    assert time.monotonic() - started < 0.2  # back to the event loop at once: the job winds down behind it
    assert not session.window.isVisible() and job.cancel_token.cancelled
    qtbot.waitUntil(lambda: session.window.closed, timeout=30_000)
    assert not job.running or job.wait(0)
    assert session.window.viewports.panels["raw"].plotter._closed


def test_a_background_read_leaves_the_job_bar_to_the_running_job(qtbot, session):
    """A non-exclusive job (the slice views' plane reads, the device probe) started during a training neither hides
    the job bar nor moves it."""
    import threading

    from voxelstudio.core.progress import Progress
    from voxelstudio.gui.job_handlers import JobHandler

    jobs, bar = session.controller.jobs, session.window.job_bar
    release = threading.Event()

    def long_job(report, cancel):
        report(Progress(3, 10, "working"))
        release.wait(10)

    def background(report, cancel):
        report(Progress(9, 10, "reading"))

    jobs.start("long job", long_job, JobHandler())
    qtbot.waitUntil(lambda: bar.isVisible() and bar.value() == 30, timeout=5_000)
    with qtbot.waitSignal(jobs.job_ended, timeout=5_000):
        jobs.start("plane read", background, JobHandler(), exclusive=False)
    assert bar.isVisible() and bar.value() == 30
    release.set()
    wait_idle(qtbot, session)
    assert not bar.isVisible()


def test_a_new_voxel_size_waits_for_the_running_job(qtbot, sample_session):
    """Applying a voxel size replaces every volume; a running job's previews and results belong to the volumes it
    started from, so Apply is off until the job ends."""
    import threading

    from voxelstudio.gui.job_handlers import JobHandler

    jobs, apply = sample_session.controller.jobs, sample_session.window.view_panel.apply_spacing
    release = threading.Event()
    assert apply.isEnabled()
    jobs.start("training", lambda report, cancel: release.wait(10), JobHandler())
    qtbot.waitUntil(lambda: not apply.isEnabled(), timeout=5_000)
    assert "Wait for the running job" in apply.toolTip()
    release.set()
    wait_idle(qtbot, sample_session)
    assert apply.isEnabled() and apply.toolTip() == ""
