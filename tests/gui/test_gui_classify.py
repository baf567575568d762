"""The Classify panel: classify the shown volume (probability bars, Grad-CAM in the fourth panel), evaluate on a
data set (confusion matrix), train with progress and a live accuracy plot, and Stop."""

from __future__ import annotations

import pytest

from tests.gui.conftest import wait_for_pixels, wait_idle
from voxelstudio.jobs.events import EpochResult, ProgressEvent

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    """Ten procedural classes, four 16^3 grids each (enough for a stratified train/validation/test split)."""
    from voxelstudio.tasks.datasets import write_shapes_dataset

    folder = tmp_path_factory.mktemp("shapes")
    write_shapes_dataset(folder, per_class=4, seed=3, size=16)
    return folder


def _tiny_training(panel, folder, epochs: int) -> None:
    panel.folder.setText(str(folder))
    panel.arch.setCurrentText("voxnet")
    panel.width_box.setValue(0.125)
    panel.grid.setValue(16)
    panel.epochs.setValue(epochs)
    panel.minutes.setValue(0.0)


def test_panel_is_a_tab_with_the_bundled_model_and_nothing_to_show_yet(sample_session):
    window = sample_session.window
    panel = window.classify_panel
    assert window.tabs.tabText(window.tabs.indexOf(panel)) == "Classify"
    assert sample_session.document.classifier_path is None and "bundled" in panel.model_label.text()
    assert panel.classify_button.isEnabled() and not panel.gradcam_button.isEnabled()
    assert panel.bars.values == {} and panel.confusion.matrix is None


def test_classify_the_shown_volume_fills_the_probability_bars(qtbot, sample_session):
    window, controller = sample_session.window, sample_session.controller
    panel = window.classify_panel
    panel.rotations.setValue(2)
    with qtbot.waitSignal(controller.classifiers.classified, timeout=120_000) as classified:
        panel.classify_button.click()
        assert controller.busy and not panel.classify_button.isEnabled()
    wait_idle(qtbot, sample_session)
    result = classified.args[0]
    assert len(panel.bars.values) == 10 and sum(panel.bars.values.values()) == pytest.approx(1.0, abs=1e-4)
    assert max(panel.bars.values, key=panel.bars.values.get) == result.predicted
    assert result.rotations == 2 and result.predicted in panel.result_label.text()
    assert "separate objects" in result.out_of_domain  # many beads: unlike the one shape per grid it knows
    assert "Unlike the classes this model knows" in panel.result_label.text()
    assert panel.results.currentWidget() is panel.bars
    assert sample_session.dialogs.errors == []


def test_show_grad_cam_fills_the_fourth_panel(qtbot, sample_session):
    window, controller, document = sample_session.window, sample_session.controller, sample_session.document
    panel = window.classify_panel
    panel.rotations.setValue(1)
    with qtbot.waitSignal(controller.classifiers.classified, timeout=120_000):
        panel.classify_button.click()
    wait_idle(qtbot, sample_session)
    heat = document.volume("gradcam")
    assert heat.shape == document.volume("raw").shape and heat.data.min() >= 0.0 and heat.data.max() <= 1.0
    assert panel.gradcam_button.isEnabled() and not window.viewports.panels["extra"].isVisible()
    panel.gradcam_button.click()
    assert sample_session.view.extra_panel == "gradcam" and window.viewports.panels["extra"].isVisible()
    wait_for_pixels(qtbot, sample_session, "extra", more_than=500)
    assert "Grad-CAM" in window.viewports.panels["extra"].title.text()
    document.set_volume("raw", document.volume("raw").replace(name="new raw"))  # a new raw drops the heat map
    assert document.volume("gradcam") is None and not panel.gradcam_button.isEnabled()


def test_evaluate_shows_the_confusion_matrix(qtbot, sample_session, shapes_folder):
    window, controller = sample_session.window, sample_session.controller
    panel = window.classify_panel
    panel.folder.setText(str(shapes_folder))
    panel.rotations.setValue(1)
    with qtbot.waitSignal(controller.classifiers.evaluated, timeout=120_000) as evaluated:
        panel.evaluate_button.click()
    wait_idle(qtbot, sample_session)
    report = evaluated.args[0]
    assert panel.confusion.matrix.shape == (10, 10) and panel.confusion.matrix.sum() == 40
    assert panel.confusion.matrix.sum(axis=1).tolist() == [4] * 10
    assert panel.confusion.matrix.trace() == round(report["accuracy"] * 40)
    assert panel.results.currentWidget() is panel.confusion and "Evaluated: accuracy" in panel.progress.label.text()
    assert sample_session.dialogs.errors == []


def test_train_shows_progress_and_accuracy_and_uses_the_new_model(qtbot, sample_session, shapes_folder):
    window, controller = sample_session.window, sample_session.controller
    panel = window.classify_panel
    _tiny_training(panel, shapes_folder, epochs=3)
    seen = []
    controller.jobs.job_event.connect(lambda event: seen.append(event) if isinstance(event, ProgressEvent) else None)
    with qtbot.waitSignal(controller.classifiers.trained, timeout=180_000) as trained:
        panel.train_button.click()
        assert controller.busy and not panel.evaluate_button.isEnabled()
    wait_idle(qtbot, sample_session)
    result = trained.args[0]
    assert result.epochs_run == 3 and result.stopped_reason == "epochs" and result.model_path.is_file()
    assert seen[0].message == "loading"  # no test part by default: the last epoch, then the domain measured
    assert isinstance(seen[-2], EpochResult) and seen[-2].validated and seen[-2].epoch == 3
    assert seen[-1].message == "measuring the model's domain on the validation grids"
    assert [p.epoch for p in seen if isinstance(p, EpochResult) and p.validated] == [1, 2, 3]
    assert panel.accuracy_plot.points[0] == [1, 2, 3]
    assert panel.accuracy_plot.chance_level == pytest.approx(0.1)  # ten class folders
    assert all(0.0 <= a <= 1.0 for a in panel.accuracy_plot.points[1])
    assert (
        sample_session.document.classifier_path == result.model_path
        and result.model_path.name in panel.model_label.text()
    )
    assert "3 epoch(s), all epochs done" in panel.progress.label.text()
    assert panel.train_button.isEnabled() and sample_session.dialogs.errors == []


def test_stop_ends_classifier_training(qtbot, sample_session, shapes_folder):
    window, controller = sample_session.window, sample_session.controller
    panel = window.classify_panel
    _tiny_training(panel, shapes_folder, epochs=500)
    epochs = []
    controller.classifiers.training.step.connect(lambda step: epochs.append(step.epoch))
    with qtbot.waitSignal(controller.classifiers.trained, timeout=180_000) as trained:
        panel.train_button.click()
        qtbot.waitUntil(lambda: any(e >= 2 for e in epochs), timeout=120_000)
        panel.progress.stop_button.click()
    wait_idle(qtbot, sample_session)
    result = trained.args[0]
    assert result.stopped_reason == "cancelled" and 2 <= result.epochs_run < 500
    assert "stopped" in panel.progress.label.text() and not controller.busy
    assert sample_session.dialogs.errors == []


def test_train_without_a_data_set_is_reported_not_started(sample_session):
    panel = sample_session.window.classify_panel
    panel.folder.setText("")
    panel.train_button.click()
    assert not sample_session.controller.busy
    assert "choose a data set folder" in sample_session.dialogs.errors[-1][1]


@pytest.mark.slow  # a real 2-trial search in a child process; the trials table is tested with a fake job too
def test_search_fills_the_trials_table_and_uses_the_best_model(qtbot, sample_session, shapes_folder):
    controller, panel = sample_session.controller, sample_session.window.classify_panel
    _tiny_training(panel, shapes_folder, epochs=1)
    panel.trials.setValue(2)
    with qtbot.waitSignal(controller.classifiers.search.finished, timeout=180_000) as searched:
        panel.search_button.click()
        assert controller.busy and not panel.train_button.isEnabled()
    wait_idle(qtbot, sample_session)
    result = searched.args[0]
    table = panel.trials_table
    assert [t.trial for t in table.trials] == [1, 2] and table.rowCount() == 2
    assert [t.state for t in table.trials] == ["complete", "complete"]
    best = table.trials[table.best_row()]
    assert best.val_accuracy == result.best_val_accuracy == max(t.val_accuracy for t in table.trials)
    assert result.model_path.with_name("classifier.search.json").is_file()
    assert sample_session.document.classifier_path == result.model_path
    assert "2 trial(s), best" in panel.progress.label.text() and sample_session.dialogs.errors == []


def test_the_orientation_choice_reaches_the_config(sample_session):
    panel = sample_session.window.classify_panel
    assert panel.config().model.orientation == "upright"  # the papers' CAD setting, as the CLI
    panel.orientation.setCurrentText("any")
    assert panel.config().model.orientation == "any"
    panel.orientation.setCurrentText("upright")


def test_the_tab_trains_the_devices_recipe_as_the_cli_does(sample_session):
    import argparse

    from voxelstudio.cli.classify_commands import train_config_from_args

    panel = sample_session.window.classify_panel
    before = (panel.arch.currentText(), panel.width_box.value(), panel.minutes.value(), panel.epochs.value(),
              panel.grid.value())  # fmt: skip
    panel.arch.setCurrentText("vrn")
    panel.width_box.setValue(0.25)
    panel.minutes.setValue(5.0)
    panel.epochs.setValue(0)  # until the budget ends
    panel.grid.setValue(32)
    cli = train_config_from_args(argparse.Namespace(
        arch="vrn", preset="cpu", size=32, width=0.25, dropout=None, orientation="upright", epochs=None, minutes=5.0,
        lr=None, batch_size=None, seed=0, search=0, resume=False, val_fraction=0.1, test_fraction=0.0, refit=False,
        no_augment=False,
    ))  # fmt: skip
    panel.set_device_kind("CPU")
    assert panel.config() == cli  # batch 32, Adam with a cosine decay, one block per stage, preset "cpu"
    panel.set_device_kind("GPU")
    gpu = panel.config()
    assert (gpu.preset, gpu.optimizer, gpu.model.blocks_per_stage, gpu.model.width) == ("gpu", "sgd", 3, 0.25)
    panel.set_device_kind("CPU")
    for box, value in zip((panel.arch, panel.width_box, panel.minutes, panel.epochs, panel.grid), before, strict=True):
        box.setCurrentText(value) if box is panel.arch else box.setValue(value)


def test_rotation_voting_defaults_to_the_models_own_choice(sample_session):
    panel = sample_session.window.classify_panel
    before = panel.rotations.value()
    panel.rotations.setValue(0)
    assert panel.rotations.text() == "auto" and panel.chosen_rotations() is None  # as the CLI's default
    panel.rotations.setValue(3)
    assert panel.chosen_rotations() == 3
    panel.rotations.setValue(before)
