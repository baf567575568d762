"""The document owns the window's state: each volume with its provenance, the denoiser and the classifier."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.core.volume import Volume
from voxelstudio.gui.document import Document

pytestmark = pytest.mark.gui


def _volume(name: str) -> Volume:
    return Volume(np.zeros((4, 4, 2), np.float32), name=name)


def test_provenance_is_set_with_its_volume_and_goes_with_it(qapp):
    document = Document()
    document.set_volume("raw", _volume("raw"))
    document.set_volume("prediction", _volume("pred"), {"method": "richardson-lucy", "iterations": 3})
    document.set_volume("gradcam", _volume("cam"), {"method": "grad-cam"})
    assert document.made_by("raw") is None  # loaded from a file
    assert document.made_by("prediction") == {"method": "richardson-lucy", "iterations": 3}
    document.set_volume("prediction", _volume("other"))  # replaced without saying how: no stale record
    assert document.made_by("prediction") is None
    document.set_volume("prediction", _volume("pred"), {"method": "test"})
    document.set_volume("raw", _volume("new raw"))  # what was made from the old raw goes, records included
    assert document.volume("prediction") is None and document.made_by("prediction") is None
    assert document.made_by("gradcam") is None


def test_a_new_prediction_drops_the_uncertainty_of_the_old_one(qapp):
    document = Document()
    document.set_volume("raw", _volume("raw"))
    document.set_volume("prediction", _volume("tta"), {"method": "denoise", "tta": True})
    document.set_volume("uncertainty", _volume("spread"), {"method": "denoise", "output": "spread"})
    document.set_volume("gradcam", _volume("cam"))
    changed = []
    document.volume_changed.connect(changed.append)

    document.set_volume("prediction", _volume("rl"), {"method": "richardson-lucy"})

    assert document.volume("uncertainty") is None and document.made_by("uncertainty") is None
    assert changed == ["prediction", "uncertainty"]
    assert document.volume("gradcam") is not None  # made from the raw volume, which did not change


def test_a_new_voxel_size_drops_the_metrics_measured_in_the_old_one(qapp):
    document = Document()
    document.set_volume("raw", _volume("raw"))
    document.set_metrics({"pred": {"fwhm_axial": 1.5}})
    document.set_spacing((1.0, 1.0, 1.0))  # what the volume has already: nothing changes
    assert document.metrics
    emitted = []
    document.metrics_changed.connect(emitted.append)

    document.set_spacing((0.2, 0.2, 0.5))

    assert document.metrics == {} and emitted == [{}]


def test_the_classifier_in_use_lives_in_the_document(qapp, tmp_path):
    document = Document()
    seen = []
    document.classifier_changed.connect(seen.append)
    assert document.classifier_path is None  # the bundled one
    document.set_classifier_path(str(tmp_path / "mine.keras"))
    document.set_classifier_path(None)
    assert seen == [tmp_path / "mine.keras", None] and document.classifier_path is None


def test_the_classify_panel_shows_the_documents_classifier(sample_session, tmp_path):
    document, panel = sample_session.document, sample_session.window.classify_panel
    document.set_classifier_path(tmp_path / "mine.keras")
    assert panel.model_label.text() == "Model: mine.keras" and not hasattr(panel, "model_path")
    next(button for button in panel.findChildren(type(panel.train_button)) if button.text() == "Bundled").click()
    assert document.classifier_path is None and "bundled" in panel.model_label.text()


def test_the_running_job_lives_in_the_document(qtbot, tmp_path):
    """The controller's job runner writes the running job into the document, and clears it however the job ends."""
    import threading

    from PySide6.QtCore import QSettings

    from voxelstudio.gui.controller import Controller
    from voxelstudio.gui.job_handlers import JobHandler

    document = Document()
    controller = Controller(document, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), runs_dir=tmp_path)
    seen = []
    document.job_changed.connect(seen.append)
    release = threading.Event()
    controller.jobs.start("counting beads", lambda report, cancel: release.wait(10), JobHandler())
    assert document.running_job == "counting beads"

    def fails(report, cancel):
        raise ValueError("no beads")

    assert controller.jobs.start("second", fails, JobHandler()) is None  # one exclusive job at a time
    release.set()
    qtbot.waitUntil(lambda: document.running_job is None, timeout=10_000)
    controller.jobs.start("failing", fails, JobHandler())
    qtbot.waitUntil(lambda: document.running_job is None, timeout=10_000)
    assert seen == ["counting beads", None, "failing", None]
