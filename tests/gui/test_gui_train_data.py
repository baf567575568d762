"""The Train tab's "Training data" box on its own: what it builds, which widgets it enables, what it asks for."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def _box(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from voxelstudio.gui.panels.train_data import TrainingDataBox

    box = TrainingDataBox(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(box)
    return box


def test_loaded_pair_by_default_then_folders_with_their_own_validation(qtbot, tmp_path):
    box = _box(qtbot, tmp_path)
    assert box.training_data().folders is None and box.needs_loaded_pair()
    assert not box.raw_folder.isEnabled() and not box.validate_on_loaded.isEnabled()
    with qtbot.waitSignal(box.changed):
        box.source.setCurrentText("folder of pairs")
    assert box.raw_folder.isEnabled() and box.target_folder.isEnabled() and box.validate_on_loaded.isEnabled()
    box.set_folder("raw", f"  {tmp_path / 'r'} ")  # typed with spaces around it
    with pytest.raises(ValueError, match="choose a raw folder and a target folder"):
        box.training_data()
    box.set_folder("target", str(tmp_path / "t"))
    assert box.training_data().folders == (tmp_path / "r", tmp_path / "t") and box.needs_loaded_pair()
    with qtbot.waitSignal(box.changed):
        box.validate_on_loaded.setChecked(False)
    assert not box.needs_loaded_pair() and not box.training_data().validate_on_loaded


def test_browse_buttons_ask_for_their_folder(qtbot, tmp_path):
    from PySide6.QtWidgets import QPushButton

    box = _box(qtbot, tmp_path)
    box.source.setCurrentText("folder of pairs")
    asked: list[str] = []
    box.choose_folder_requested.connect(asked.append)
    for role in ("target", "raw"):
        box.findChild(QPushButton, f"browse_{role}_folder").click()
    assert asked == ["target", "raw"]
