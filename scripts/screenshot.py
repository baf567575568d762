"""Make docs/screenshot.png: the window with the bundled sample, after a denoise, with the metrics shown.

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


def make_screenshot(out: Path, minutes: float, size: tuple[int, int], model: Path | None) -> None:
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

    target = document.volume("target").data
    session.view.set_cursor(tuple(int(i) for i in np.unravel_index(np.argmax(target), target.shape)))
    window.tabs.setCurrentWidget(window.metrics_panel)
    window.viewports.render()
    settle(1.5)
    window.viewports.render()
    if not window.grab().save(str(out), "PNG"):
        raise OSError(f"{out}: could not write the screenshot")
    print(f"wrote {out}")
    window.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time when no bundled model exists")
    parser.add_argument("--size", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"))
    parser.add_argument("--model", type=Path, help="a trained .keras denoiser to use instead of training one")
    args = parser.parse_args()
    if os.environ.get("DISPLAY"):
        make_screenshot(args.out, args.minutes, tuple(args.size), args.model)
        return
    from pyvirtualdisplay import Display

    with Display(visible=False, size=(args.size[0] + 100, args.size[1] + 100)):
        make_screenshot(args.out, args.minutes, tuple(args.size), args.model)


if __name__ == "__main__":
    main()
