"""Make the README's screenshots of the window with the bundled sample, after a denoise:

- ``docs/screenshot.png``: the three panels with the metrics;
- ``docs/screenshot_residual.png``: four panels with the residual, each with its colorbar (raw in Fiji's green);
- ``docs/screenshot_profile.png``: a line profile along z through an elongated bead, raw against predicted.

Run from the repository root: ``python scripts/screenshot.py`` (it starts a virtual X display when there is none).
It uses the bundled default model when one is installed, else trains a small U-Net for ``--minutes`` first.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def wait_until(condition, timeout_s: float) -> None:
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def settle(seconds: float) -> None:
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() > end, seconds + 1)


def bundled_model() -> Path | None:
    from voxelstudio.core.errors import ModelError
    from voxelstudio.tasks.denoise import default_model_path

    try:
        return default_model_path()
    except ModelError:
        return None


def save(window, path: Path) -> None:
    """Render every panel, let the window settle, and write ``window`` as a PNG (atomically)."""
    from voxelstudio.gui.image_files import save_image

    window.viewports.render()
    settle(1.5)
    window.viewports.render()
    save_image(window.grab().toImage(), path)
    print(f"wrote {path}")


def brightest_bead(volume) -> tuple[int, int, int]:
    """The (y, x, z) voxel of the brightest bead, away from the volume's z ends so its whole axial spread shows."""
    data = np.array(volume.data, dtype=np.float32)
    depth = data.shape[2]
    margin = max(depth // 6, 1)
    data[:, :, :margin] = -np.inf
    data[:, :, depth - margin :] = -np.inf
    return tuple(int(i) for i in np.unravel_index(np.argmax(data), data.shape))  # type: ignore[return-value]


def make_screenshots(folder: Path, minutes: float, size: tuple[int, int], model: Path | None) -> None:
    import tempfile

    from PySide6.QtCore import QSettings

    from voxelstudio.app import build_session, create_application
    from voxelstudio.ml.config import DenoiserConfig, TrainConfig

    create_application()
    scratch = Path(tempfile.mkdtemp(prefix="voxelstudio-screenshot-"))
    session = build_session(
        settings=QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat), runs_dir=scratch
    )
    window, controller, document = session.window, session.controller, session.document
    controller.failed.connect(lambda error: print(f"error: {error.message}\n{error.details}"))
    window.resize(*size)
    window.show()
    controller.open_sample()
    wait_until(lambda: not controller.busy and document.volume("target") is not None, 60)

    model = model or bundled_model()
    if model is None:
        config = TrainConfig(
            model=DenoiserConfig.for_arch("unet"),
            epochs=1000,
            minutes=minutes,
            patch_shape=(32, 32, 16),
            steps_per_epoch=8,
        )
        window.train_panel.set_config(config)
        print(f"training a U-Net for {minutes:g} min (no bundled model)…")
        controller.train(config)
        wait_until(lambda: not controller.busy, minutes * 60 + 300)
    else:
        document.set_model_path(model)
    controller.denoise()
    wait_until(lambda: not controller.busy and bool(document.metrics), 600)
    controller.detect_device()
    wait_until(lambda: not window.device_label.text().endswith("checking…"), 120)

    view = session.view
    bead = brightest_bead(document.volume("target"))
    view.set_cursor(bead)
    window.tabs.setCurrentWidget(window.metrics_panel)
    save(window, folder / "screenshot.png")

    window.action_map["show_residual"].setChecked(True)
    view.set_panel_cmap("raw", "green")
    window.tabs.setCurrentWidget(window.view_panel)
    window.view_panel.cmap_panel.setCurrentIndex(window.view_panel.cmap_panel.findData("raw"))
    window.slices.panels["raw"].hovered.emit(bead)  # the probe: voxel, µm and values
    save(window, folder / "screenshot_residual.png")

    window.action_map["show_residual"].setChecked(False)
    view.set_panel_cmap("raw", None)
    view.update(cmap="inferno")
    raw = document.volume("raw")
    y, x, _z = bead
    window.viewports.flush()
    window.slices.refresh(now=True)
    window.slices.panels["raw"].draw_line("xz", (y, x, 0.0), (y, x, float(raw.shape[2] - 1)))
    window.tabs.setCurrentWidget(window.profile_panel)
    save(window, folder / "screenshot_profile.png")
    window.tabs.setCurrentWidget(window.train_panel)
    save(window, folder / "screenshot_train.png")
    window.close()
    wait_until(lambda: window.closed, 120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="the folder the PNG files go to")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time when no bundled model exists")
    parser.add_argument("--size", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"))
    parser.add_argument("--model", type=Path, help="a trained .keras denoiser to use instead of training one")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)  # before the window: a folder that cannot be made fails at once
    if os.environ.get("DISPLAY"):
        make_screenshots(args.out, args.minutes, tuple(args.size), args.model)
        return
    from pyvirtualdisplay import Display

    with Display(visible=False, size=(args.size[0] + 100, args.size[1] + 100)):
        make_screenshots(args.out, args.minutes, tuple(args.size), args.model)
        from PySide6.QtWidgets import QApplication

        QApplication.instance().shutdown()  # before its X display goes away


if __name__ == "__main__":
    main()
