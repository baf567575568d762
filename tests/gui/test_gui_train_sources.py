"""Training data choices in the Train panel (loaded pair or folders of pairs) and the live preview-quality plot."""

from __future__ import annotations

import math

import pytest

from tests.gui.conftest import wait_idle
from tests.gui.test_gui_train import _configure

pytestmark = pytest.mark.gui


def _write_pairs(folder, names=("a", "b", "c"), shape=(32, 32, 16)):
    """Simulated raw/target pairs as folder/raw/<name>.npy and folder/target/<name>.npy; returns the two folders."""
    from voxelstudio.core.volume import Volume
    from voxelstudio.io import save_volume
    from voxelstudio.sim import simulate_pair

    raw_dir, target_dir = folder / "raw", folder / "target"
    raw_dir.mkdir(parents=True, exist_ok=True)
    target_dir.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        raw, target = simulate_pair(shape, seed=seed)
        save_volume(Volume(raw, name=name), raw_dir / f"{name}.npy")
        save_volume(Volume(target, name=name), target_dir / f"{name}.npy")
    return raw_dir, target_dir


def _use_folders(panel, raw_dir, target_dir, *, validate_on_loaded: bool) -> None:
    panel.data.source.setCurrentText("folder of pairs")
    panel.data.set_folder("raw", str(raw_dir))
    panel.data.set_folder("target", str(target_dir))
    panel.data.validate_on_loaded.setChecked(validate_on_loaded)


def _train_two_epochs(qtbot, session):
    """Click Train and wait for the job; returns the TrainResult and each preview's measured quality."""
    controller = session.controller
    measured: list = []
    controller.training.preview_quality.connect(measured.append)
    with qtbot.waitSignal(controller.model_trained, timeout=120_000) as trained:
        session.window.train_panel.train_button.click()
    wait_idle(qtbot, session)
    result = trained.args[0]
    assert result.epochs_run == 2 and result.model_path.is_file()
    return result, measured


def test_folder_training_validated_on_the_loaded_pair(qtbot, sample_session, tmp_path):
    window, document = sample_session.window, sample_session.document
    panel = window.train_panel
    _configure(panel)
    raw_dir, target_dir = _write_pairs(tmp_path)
    _use_folders(panel, raw_dir, target_dir, validate_on_loaded=True)
    result, measured = _train_two_epochs(qtbot, sample_session)
    assert document.model_path == result.model_path
    assert document.volume("prediction").name == "preview, epoch 2"  # the loaded raw volume was previewed
    # the child measured every preview; the plot holds validation PSNR per epoch and the target's z/xy ratio
    assert [m.epoch for m in measured] == [1, 2]
    assert measured[0].target_fwhm_ratio == pytest.approx(1.0, abs=0.2)  # the sample's target beads are round
    assert panel.quality.psnr[0] == [1, 2] and all(math.isfinite(v) for v in panel.quality.psnr[1])
    assert panel.quality.target_ratio == pytest.approx(measured[0].target_fwhm_ratio)
    finite = [m.epoch for m in measured if math.isfinite(m.fwhm_ratio)]
    assert panel.quality.ratio[0] == finite
    assert sample_session.dialogs.errors == []
    # the folder choice is next session's default
    settings = sample_session.settings
    assert settings.value("training/source") == "folder of pairs"
    assert settings.value("training/raw_folder") == str(raw_dir)
    assert settings.value("training/target_folder") == str(target_dir)


def test_folder_training_needs_no_loaded_pair(qtbot, session, dialogs, tmp_path):
    window, document = session.window, session.document
    panel = window.train_panel
    _configure(panel)
    train_action = window.action_map["train"]  # Ctrl+T follows the panel's button
    assert not panel.train_button.isEnabled() and not train_action.isEnabled()  # default data: the loaded pair
    raw_dir, target_dir = _write_pairs(tmp_path / "pairs")
    _use_folders(panel, raw_dir, target_dir, validate_on_loaded=True)
    assert not panel.train_button.isEnabled()  # still validates on a loaded pair that is not there
    panel.data.validate_on_loaded.setChecked(False)
    assert panel.train_button.isEnabled() and train_action.isEnabled()
    session.commands.update_actions()  # a document or job change re-applies the action table
    assert train_action.isEnabled()
    result, measured = _train_two_epochs(qtbot, session)
    assert math.isfinite(result.best_val_loss)  # a held-out folder pair validated
    assert document.volume("prediction") is None  # a folder volume's preview does not pose as the loaded raw's
    assert [m.epoch for m in measured] == [1, 2] and panel.quality.psnr[0] == [1, 2]
    assert dialogs.errors == []


def test_a_bad_folder_shows_an_error_and_leaves_the_panel_usable(qtbot, sample_session, tmp_path):
    window, controller = sample_session.window, sample_session.controller
    panel = window.train_panel
    _configure(panel)
    raw_dir, _ = _write_pairs(tmp_path / "one", names=("a",))
    _, other_targets = _write_pairs(tmp_path / "two", names=("b",))
    _, smaller_targets = _write_pairs(tmp_path / "three", names=("a",), shape=(24, 24, 16))
    cases = [
        (raw_dir, tmp_path / "missing", "no such file or folder"),
        (raw_dir, other_targets, "no file matching"),
        (raw_dir, smaller_targets, "shapes differ"),
    ]
    for raw, target, expected in cases:
        sample_session.dialogs.errors.clear()
        _use_folders(panel, raw, target, validate_on_loaded=True)
        panel.train_button.click()
        wait_idle(qtbot, sample_session, timeout=120_000)
        assert len(sample_session.dialogs.errors) == 1
        title, message, details = sample_session.dialogs.errors[0]
        assert title == "Training failed" and expected in message and details
        assert not controller.busy and panel.train_button.isEnabled() and not panel.progress.stop_button.isEnabled()
        assert window.action_map["denoise"].isEnabled()
    panel.data.source.setCurrentText("folder of pairs")
    panel.data.set_folder("target", "")
    sample_session.dialogs.errors.clear()
    panel.train_button.click()  # an empty folder field is caught before any job starts
    assert not controller.busy and "choose a raw folder" in sample_session.dialogs.errors[0][1]


def test_training_data_choice_persists(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from voxelstudio.gui.panels.train import TrainPanel

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    panel = TrainPanel(settings)
    qtbot.addWidget(panel)
    assert panel.data.source.currentText() == "loaded pair" and not panel.data.raw_folder.isEnabled()
    _use_folders(panel, tmp_path / "r", tmp_path / "t", validate_on_loaded=False)
    assert panel.data.raw_folder.isEnabled()
    panel.remember(panel.config())
    settings.sync()
    again = TrainPanel(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    data = again.training_data()
    assert data.folders == (tmp_path / "r", tmp_path / "t") and not data.validate_on_loaded
    assert not data.needs_loaded_pair


def test_quality_plot_keeps_one_point_per_epoch_and_skips_unmeasured_previews(qtbot):
    from voxelstudio.gui.plots import QualityPlot

    plot = QualityPlot()
    qtbot.addWidget(plot)
    plot.add_psnr(1, 21.5)
    plot.add_psnr(1, 21.5)
    plot.add_psnr(2, math.nan)
    plot.add_ratio(1, 2.4, 1.05)
    plot.add_ratio(2, None, 1.05)
    plot.add_ratio(3, 1.6)
    plot.redraw()
    assert plot.psnr == ([1], [21.5])
    assert plot.ratio == ([1, 3], [2.4, 1.6]) and plot.target_ratio == 1.05
    assert list(plot.target_line.get_ydata()) == [1.05, 1.05]
    plot.clear()
    assert plot.psnr == ([], []) and math.isnan(plot.target_ratio)
