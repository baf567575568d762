"""The Train tab's choices: the device preset, starting from the bundled model, and adapting to the raw volume
(with fake jobs: nothing trains for real here)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtWidgets import QPushButton

from tests.gui.conftest import wait_idle
from voxelstudio.jobs.adapt import AdaptOutcome
from voxelstudio.jobs.events import CalibrationFound, Preview, ProgressEvent, TrainingStep

pytestmark = pytest.mark.gui


@pytest.fixture
def panel(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from voxelstudio.gui.panels.train import TrainPanel

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    widget = TrainPanel(settings)
    qtbot.addWidget(widget)
    return widget


def _choose_preset(panel, name: str) -> None:
    panel.preset.setCurrentText(name)
    panel.preset.activated.emit(panel.preset.currentIndex())  # as a user's pick does


def test_bundled_start_follows_the_model_config(panel):
    from voxelstudio.ml.bundled import architecture_mismatch, bundled_denoiser_path, read_train_config

    bundled = read_train_config(bundled_denoiser_path()).model
    box = panel.from_bundled
    assert box.isEnabled() and not box.isChecked()  # fine-tuning is a choice until it wins the benchmark
    assert panel.init_model() is None  # (off, as in the CLI)
    other = bundled.filters + 8
    panel.filters.setValue(other)
    assert box.isEnabled() and f"filters {bundled.filters} vs {other}" in box.toolTip()
    box.click()  # checking it brings the bundled model's architecture into the form
    assert box.isChecked() and panel.init_model() == bundled_denoiser_path()
    assert panel.filters.value() == bundled.filters and architecture_mismatch(bundled, panel.config().model) is None
    panel.filters.setValue(other)
    assert box.isEnabled() and not box.isChecked() and panel.init_model() is None
    panel.filters.setValue(bundled.filters)
    assert box.isChecked()  # the user's choice is kept while the configuration changes
    box.click()
    assert panel.init_model() is None and not box.wanted
    panel.arch.setCurrentText("simple")
    assert "arch unet vs simple" in box.toolTip() and not box.isChecked()
    panel.arch.setCurrentText("unet")
    assert not box.isChecked()


def test_voxel_size_input_goes_into_the_config_and_parts_it_from_the_bundled_model(panel):
    assert not panel.spacing_input.isChecked() and not panel.config().model.spacing_input
    panel.from_bundled.click()
    assert panel.from_bundled.isChecked()
    panel.spacing_input.click()
    assert panel.config().model.spacing_input
    box = panel.from_bundled
    assert not box.isChecked() and "spacing_input False vs True" in box.toolTip()  # its weights do not fit
    config = panel.config()
    panel.set_config(type(config)())
    assert not panel.spacing_input.isChecked()
    panel.set_config(config)
    assert panel.spacing_input.isChecked()


def test_bundled_start_takes_fields_the_form_does_not_show(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from voxelstudio.gui.panels.train import TrainPanel
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig

    deep = DenoiserConfig.for_arch("unet", depth=4, pool_z=False)  # filters and kernel as the form's defaults
    monkeypatch.setattr("voxelstudio.ml.bundled.read_train_config", lambda path: TrainConfig(model=deep))
    panel = TrainPanel(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(panel)
    box = panel.from_bundled
    assert not box.isChecked() and "depth 4 vs 3" in box.toolTip()
    box.click()  # no shown value changes, the hidden ones do
    assert box.isChecked() and panel.config().model == deep and panel.init_model() is not None
    panel.filters.setValue(panel.filters.value() + 1)
    panel.filters.setValue(panel.filters.value() - 1)
    assert box.isChecked() and panel.config().model == deep  # kept while the architecture stays


def test_bundled_start_is_disabled_without_a_bundled_model(qtbot, monkeypatch):
    from voxelstudio.gui.panels.train_start import BundledStart

    def missing():
        raise FileNotFoundError("resources/models/denoiser_default.keras is missing")

    monkeypatch.setattr("voxelstudio.ml.bundled.bundled_denoiser_path", missing)
    box = BundledStart()
    qtbot.addWidget(box)
    box.follow(None)
    assert not box.isEnabled() and box.init_model() is None
    assert box.toolTip() == "No bundled model to start from: resources/models/denoiser_default.keras is missing"


def test_preset_fills_the_config_as_the_cli_does(panel):
    from voxelstudio.ml.config import preset_config

    _choose_preset(panel, "gpu")
    assert panel.config() == preset_config("gpu")  # 32 filters, 128x128x32 patches, batches of 16, mixed precision
    assert panel.filters.value() == 32 and [b.value() for b in panel.patch] == [128, 128, 32]
    assert not panel.from_bundled.isChecked() and "vs 32" in panel.from_bundled.toolTip()  # not a 32-filter one
    panel.batch.setValue(8)
    edited = panel.config()
    assert edited.preset == "gpu" and edited.mixed_precision and edited.batch_size == 8  # recorded with the model

    _choose_preset(panel, "auto")
    assert panel.config() == preset_config("cpu")  # the device is a CPU until the probe says otherwise
    panel.set_device_kind("GPU")
    assert panel.config() == preset_config("gpu")
    _choose_preset(panel, "cpu")
    panel.set_device_kind("GPU")
    assert panel.config() == preset_config("cpu")  # an explicit preset stays
    _choose_preset(panel, "auto")
    panel.set_device_kind("CPU")
    panel.batch.setValue(3)  # edited before the device probe answers
    panel.set_device_kind("GPU")
    assert panel.batch.value() == 3 and panel.filters.value() == preset_config("cpu").model.filters


def test_preset_choice_is_remembered(panel, qtbot):
    from voxelstudio.gui.panels.train import TrainPanel

    _choose_preset(panel, "gpu")
    panel.from_bundled.wanted = True
    panel.remember(panel.config())
    again = TrainPanel(panel.settings)
    qtbot.addWidget(again)
    assert again.preset.currentText() == "gpu" and again.config().preset == "gpu"
    assert again.from_bundled.wanted


def test_training_starts_from_the_bundled_model_when_checked(qtbot, sample_session, monkeypatch):
    from voxelstudio.ml.bundled import bundled_denoiser_path, read_train_config

    calls = []

    def fake_run(function, kwargs, *, report, cancel=None):
        calls.append(kwargs)
        return SimpleNamespace(model_path=None, stopped_reason="cancelled", epochs_run=0, best_val_loss=math.nan,
                               bead_offset=None)  # fmt: skip

    monkeypatch.setattr("voxelstudio.jobs.work.run_isolated", fake_run)
    panel = sample_session.window.train_panel
    _choose_preset(panel, "cpu")
    assert panel.from_bundled.isEnabled() and not panel.from_bundled.isChecked()
    for _ in range(2):
        panel.from_bundled.click()
        panel.train_button.click()
        wait_idle(qtbot, sample_session)
    assert [call["init"] for call in calls] == [bundled_denoiser_path(), None]
    assert calls[0]["config"].preset == "cpu"
    assert calls[0]["config"].model == read_train_config(bundled_denoiser_path()).model  # its weights fit


def _calibration() -> CalibrationFound:
    z = np.linspace(-1, 1, 13)
    section = np.exp(-(np.linspace(-1, 1, 15)[:, None] ** 2) * 20 - z[None, :] ** 2 * 4).astype(np.float32)
    return CalibrationFound(
        fitted=(("na", 1.2, 0.01), ("photons", 310.0, 7.0), ("read_noise", 2.1, math.nan)), beads_used=9,
        converged=True, relative_residual=0.12, spacing_um=(0.1, 0.1, 0.2), measured_fwhm_um=(0.32, 1.13),
        fitted_fwhm_um=(0.34, 1.15), measured_xz=section, fitted_xz=section, measured_xy=section[:, :7],
        fitted_xy=section[:, :7],
    )  # fmt: skip


def test_a_stack_that_runs_the_other_way_is_said_so(qtbot, sample_session):
    box = sample_session.window.train_panel.adapt
    box.show_calibration(dataclasses.replace(_calibration(), z_reversed=True))
    assert "The stack runs the other way" in box.summary.text() and "9 beads" in box.summary.text()
    box.show_calibration(None)


def _fake_adapt(stopped_reason: str = "time", fail: bool = False, given: list | None = None, corrected: bool = True):
    """A stand-in for jobs.adapt.adapt_to_volume: calibration stages, the calibration, a step, then the end;
    ``given`` collects the calibration options it was given; ``corrected``: whether the model moves scans."""

    def adapt(raw, out, minutes, report, cancel=None, calibrate_options=None, fine_tune=True):
        if given is not None:
            given.append(calibrate_options)
        report(ProgressEvent(1, 4, "averaging beads"))
        report(_calibration())
        report(TrainingStep(15, 60, "training", epoch=1, epochs=100000, step=3, steps=16, loss=0.1, eta_s=45))
        if raw is not None:  # the epoch's prediction of the raw volume, shown live
            report(Preview(1, np.full(raw.shape, 0.5, np.float32)))
        if fail:
            raise ValueError(f"{out.name}: disk full")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"model")
        training = SimpleNamespace(model_path=out, stopped_reason=stopped_reason, epochs_run=3) if fine_tune else None
        offset = "Bead positions: the model moved beads by (y, x, z) +0.00, …" if corrected else "Bead positions: …"
        return AdaptOutcome(_calibration(), training, offset, out, corrected)

    return adapt


def _run_adapt(qtbot, session, monkeypatch, fake):
    monkeypatch.setattr(
        "voxelstudio.jobs.work.run_isolated",
        lambda function, kwargs, *, report, cancel=None: fake(**kwargs, report=report, cancel=cancel),
    )
    box = session.window.train_panel.adapt
    assert box.adapt_button.isEnabled()
    box.minutes.setValue(1.0)
    box.adapt_button.click()
    wait_idle(qtbot, session)
    return box


def test_adapt_shows_the_calibration_and_makes_the_model_current(qtbot, sample_session, monkeypatch):
    steps = []
    sample_session.controller.adaptation.step.connect(steps.append)
    box = _run_adapt(qtbot, sample_session, monkeypatch, _fake_adapt())
    model = sample_session.document.model_path
    assert model is not None and model.name == "adapted.keras" and model.parent.name.startswith("adapt-")
    assert [s.fraction for s in steps] == [0.25]
    table = box.table
    assert table.rowCount() == 3 and table.item(0, 0).text() == "NA" and table.item(1, 1).text() == "310"
    assert table.item(2, 2).text() == "–"  # an undetermined standard error
    assert "9 beads" in box.summary.text() and "converged" in box.summary.text()
    assert "other way" not in box.summary.text()
    assert box.beads.calibration is not None and box.beads.calibration.measured_fwhm_um == (0.32, 1.13)
    assert "is now the current model. Bead positions: the model moved" in box.progress.label.text()
    assert box.progress.label.text().endswith("Denoise to see its prediction.")
    assert sample_session.dialogs.errors == [] and box.adapt_button.isEnabled()
    assert sample_session.document.volume("prediction") is None  # the network's preview: the model moves scans first


def test_the_adaptation_preview_stays_when_the_model_predicts_as_it_did(qtbot, sample_session, monkeypatch):
    box = _run_adapt(qtbot, sample_session, monkeypatch, _fake_adapt(corrected=False))
    preview = sample_session.document.volume("prediction")  # the live preview stays: its model is the current one
    assert preview is not None and preview.name == "preview, epoch 1" and float(preview.data.max()) == 0.5
    assert "Denoise to see" not in box.progress.label.text()


@pytest.mark.parametrize("fail", [False, True], ids=["stopped", "failed"])
def test_a_stopped_or_failed_adapt_keeps_the_current_model(qtbot, sample_session, monkeypatch, tmp_path, fail):
    current = tmp_path / "mine.keras"
    sample_session.document.set_model_path(current)
    box = _run_adapt(qtbot, sample_session, monkeypatch, _fake_adapt("cancelled", fail=fail))
    assert sample_session.document.model_path == current
    assert "current model is unchanged" in box.progress.label.text()
    assert sample_session.document.volume("prediction") is None  # the preview of a model not kept is taken back
    errors = sample_session.dialogs.errors
    assert errors == [] if not fail else (len(errors) == 1 and errors[0][1] == "adapted.keras: disk full")


def test_adapt_gives_the_calibration_what_the_user_knows(qtbot, sample_session, monkeypatch, tmp_path):
    box = sample_session.window.train_panel.adapt
    given: list = []
    _run_adapt(qtbot, sample_session, monkeypatch, _fake_adapt(given=given))
    assert given == [{}]  # nothing known: everything is fitted
    asked = []
    dark, psf = tmp_path / "dark.tif", tmp_path / "psf.tif"
    answers = iter([str(dark), None, str(psf)])  # the second dialog is cancelled: the dark stack stays

    def answer(_parent, title, folder, _filter):
        asked.append((title, folder))
        return next(answers)

    monkeypatch.setattr("voxelstudio.gui.dialogs.get_open_path", answer)
    box.findChild(QPushButton, "choose_adapt_dark").click()
    box.findChild(QPushButton, "choose_adapt_dark").click()
    box.findChild(QPushButton, "choose_adapt_psf").click()
    assert "dark stack" in asked[0][0] and asked[1][1] == str(tmp_path)  # asked again where the last one was
    assert box.files["dark"].label.text() == "dark.tif" and box.files["dark"].label.toolTip() == str(dark)
    box.na.setValue(1.2)
    box.wavelength.setValue(0.52)
    _run_adapt(qtbot, sample_session, monkeypatch, _fake_adapt(given=given))
    assert given[-1] == {"na": 1.2, "wavelength_um": 0.52, "dark": str(dark), "psf": str(psf)}
    box.findChild(QPushButton, "clear_adapt_psf").click()
    box.na.setValue(box.na.minimum())
    assert box.na.text() == "fitted from the beads" and box.files["psf"].label.text() == "none"
    _run_adapt(qtbot, sample_session, monkeypatch, _fake_adapt(given=given))
    assert given[-1] == {"wavelength_um": 0.52, "dark": str(dark)}
    box.set_file("dark", None)
    box.wavelength.setValue(box.wavelength.minimum())


def test_adapt_without_fine_tuning_corrects_the_bundled_model(qtbot, sample_session, monkeypatch):
    box = sample_session.window.train_panel.adapt
    box.fine_tune.setChecked(False)
    assert not box.minutes.isEnabled()
    seen = []
    monkeypatch.setattr(
        "voxelstudio.jobs.work.run_isolated",
        lambda function, kwargs, *, report, cancel=None: (
            seen.append(kwargs["fine_tune"]) or _fake_adapt()(**kwargs, report=report, cancel=cancel)
        ),
    )
    box.adapt_button.click()
    wait_idle(qtbot, sample_session)
    assert seen == [False]
    model = sample_session.document.model_path
    assert model is not None and model.name == "adapted.keras"
    assert box.progress.label.text().startswith("Corrected (not fine-tuned); adapted.keras is now the current model.")
    monkeypatch.setattr(  # too few beads to measure, or beads where they should be: the model is not moved
        "voxelstudio.jobs.work.run_isolated",
        lambda function, kwargs, *, report, cancel=None: _fake_adapt(corrected=False)(**kwargs, report=report),
    )
    box.adapt_button.click()
    wait_idle(qtbot, sample_session)
    assert box.progress.label.text().startswith("Calibrated, not corrected (not fine-tuned); adapted.keras is now")
    box.fine_tune.setChecked(True)
    assert box.minutes.isEnabled()


def test_adapt_remembers_what_the_user_gave_for_the_next_session(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from voxelstudio.gui.panels.train import TrainPanel

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    dark, gone = tmp_path / "dark.tif", tmp_path / "moved.tif"
    dark.write_bytes(b"dark")
    first = TrainPanel(settings)
    qtbot.addWidget(first)
    box = first.adapt
    box.minutes.setValue(3.0)
    box.fine_tune.setChecked(False)
    box.na.setValue(1.3)
    box.set_file("dark", str(dark))
    box.set_file("psf", str(gone))  # a file moved away before the next session
    requests = []
    box.adapt_requested.connect(lambda *args: requests.append(args))
    box.adapt_button.click()
    assert requests == [(3.0, {"na": 1.3, "dark": str(dark), "psf": str(gone)}, False)]
    again = TrainPanel(settings).adapt
    qtbot.addWidget(again.parentWidget())
    assert (again.minutes.value(), again.fine_tune.isChecked(), again.na.value()) == (3.0, False, 1.3)
    assert not again.minutes.isEnabled()  # no fine-tuning: no budget to set
    assert again.calibration_options() == {"na": 1.3, "dark": str(dark)}  # the emission stays fitted; no lost PSF


def test_adapt_needs_the_voxel_size(qtbot, sample_session):
    document = sample_session.document
    document.set_volume("raw", document.volume("raw").replace(spacing=(1.0, 1.0, 1.0)))
    sample_session.window.train_panel.adapt.adapt_button.click()
    assert not sample_session.controller.busy
    assert "voxel size unknown" in sample_session.dialogs.errors[0][1]


def test_adapt_handler_passes_each_event_on(qtbot, sample_session):
    controller = sample_session.controller
    handler = controller.adaptation
    seen = {"progress": [], "step": [], "calibrated": [], "finished": [], "ended": []}
    for name in seen:
        getattr(handler, {"progress": "progressed"}.get(name, name)).connect(seen[name].append)
    results = []

    def job(report, cancel):
        return _fake_adapt()(None, controller.runs_dir / "handler" / "a.keras", 1.0, report)

    controller.jobs.start("adaptation", job, lambda: handler.arm(results.append))
    wait_idle(qtbot, sample_session)
    qtbot.waitUntil(lambda: bool(seen["ended"]), timeout=10_000)
    assert [e.message for e in seen["progress"]] == ["averaging beads"]  # steps go to their own signal
    assert [s.step for s in seen["step"]] == [3] and seen["calibrated"][0].beads_used == 9
    assert results == seen["finished"] and results[0].completed and seen["ended"] == ["finished"]
    assert sample_session.document.model_path == results[0].model_path  # the handler applied the result


def test_the_adapt_budget_starts_at_the_librarys_default(session):
    from voxelstudio.tasks.adapt import DEFAULT_MINUTES

    assert session.window.train_panel.adapt.minutes.value() == DEFAULT_MINUTES
