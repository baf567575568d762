"""Where training starts: the device preset that fills the configuration, and whether the weights start from the
bundled denoiser (fine-tuning) or at random."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QWidget

PRESET_TIPS = {
    "auto": "The recipe for the compute device the backend sees: gpu on a GPU, cpu otherwise",
    "cpu": "Fits a 2-core laptop: 8-filter U-Net, 64x64x32 patches, batches of 4",
    "gpu": "Keeps a GPU busy: 32-filter U-Net, 128x128x32 patches, batches of 16, mixed precision",
}


class PresetBox(QComboBox):
    """The training presets ``train-denoiser --preset`` offers; :meth:`recipe` is the config the choice stands for."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="preset")
        from voxelstudio.ml.config import PRESETS

        for index, name in enumerate(PRESETS):
            self.addItem(name)
            self.setItemData(index, PRESET_TIPS.get(name, ""), 3)  # 3: Qt.ItemDataRole.ToolTipRole
        self.setToolTip("Fills the configuration with a recipe for the device (recorded in the model file)")

    def resolved(self, device_kind: str) -> str:
        """``cpu`` or ``gpu``: the choice, with ``auto`` following ``device_kind`` ("GPU" or "CPU")."""
        from voxelstudio.ml.config import resolve_preset

        return resolve_preset(self.currentText(), device_kind)

    def recipe(self, device_kind: str) -> Any:
        """The TrainConfig of the chosen preset on ``device_kind``, as the CLI builds it."""
        from voxelstudio.ml.config import preset_config

        return preset_config(self.resolved(device_kind))


class BundledStart(QCheckBox):
    """The "Start from the bundled model" check box. Checked, training starts from the bundled denoiser's weights,
    so in its architecture: checking it while the form shows another one asks the form to switch
    (``adopt_requested`` with the bundled model's DenoiserConfig); changing the architecture away unchecks it until
    the form matches again (the user's choice, ``wanted``, is kept). Disabled, saying why, without a bundled model.

    Unchecked by default, as ``train-denoiser`` starts from random weights: on benchmarks/denoise.py (4 pairs, 10
    minutes, fine-tuned at a learning rate of 2e-4) fine-tuning the bundled model beat training the default U-Net
    from scratch by less than issue 13's bar of 1 dB and F1 0.98 (40.90 vs 40.19 dB, bead F1 0.942 vs 0.927;
    benchmarks/README.md), so it stays a choice until a GPU-trained bundled model clears it. Checked, training uses
    the form's learning rate (lower it for fine-tuning)."""

    adopt_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Start from the bundled model", parent, objectName="from_bundled")
        from voxelstudio.ml.bundled import bundled_denoiser_path, describe_architecture, read_train_config

        self.wanted = False  # the user's choice, kept while the configuration does not allow it
        self.path: Path | None = None
        self._bundled: Any = None
        self._mismatch: str | None = None
        try:
            self.path = bundled_denoiser_path()
            self._bundled = read_train_config(self.path).model
            self._about = describe_architecture(self._bundled)
        except (FileNotFoundError, ValueError) as exc:
            self.path, self._about = None, str(exc)
        self.clicked.connect(self._clicked)

    def _clicked(self, checked: bool) -> None:
        self.wanted = bool(checked)
        if checked and self._mismatch is not None:
            self.adopt_requested.emit(self._bundled)  # the form switches, and calls follow()
            self.setChecked(self._mismatch is None)

    def follow(self, model: Any) -> None:
        """Check the box (when the user wants it) while a ``model`` config can start from the bundled weights;
        uncheck it, saying what differs, while it cannot."""
        from voxelstudio.ml.bundled import architecture_mismatch

        if self._bundled is None:
            self.setEnabled(False)
            self.setChecked(False)
            self.setToolTip(f"No bundled model to start from: {self._about}")
            return
        self._mismatch = architecture_mismatch(self._bundled, model)
        tip = f"Fine-tune the bundled denoiser ({self._about}) instead of starting from random weights"
        if self._mismatch is not None:
            tip += f"; checking this sets its architecture (the form has another: {self._mismatch})"
        self.setEnabled(True)
        self.setChecked(self._mismatch is None and self.wanted)
        self.setToolTip(tip)

    def init_model(self) -> Path | None:
        """The model file training starts from: the bundled one when checked, else None (random weights)."""
        return self.path if self.isEnabled() and self.isChecked() else None
