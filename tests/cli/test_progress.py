"""cli.progress: Ctrl-C as a clean stop; simulate and train-classifier keep what is finished and exit 130."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from voxelstudio import cli
from voxelstudio.cli.progress import EXIT_INTERRUPTED, cancel_on_interrupt


def test_first_ctrl_c_cancels_second_interrupts(capsys):
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN when started as a background job
    with cancel_on_interrupt() as token:
        os.kill(os.getpid(), signal.SIGINT)
        assert token.cancelled
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert "stopping after the current step" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # the handler found is restored


def test_ctrl_c_in_simulate_finishes_the_pair_and_keeps_the_finished_ones(tmp_path: Path, monkeypatch, capsys):
    """Ctrl-C while a pair is written (here: just after its raw volume) lets that pair finish: every raw file has
    its target and params.json lists exactly the pairs on disk."""
    from voxelstudio.tasks import simulate

    save, saved = simulate.save_volume, []

    def save_then_interrupt(volume, path, **options):
        written = save(volume, path, **options)
        saved.append(Path(path).parent.name)
        if saved == ["raw", "target", "raw"]:
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C during the second pair
        return written

    monkeypatch.setattr(simulate, "save_volume", save_then_interrupt)
    out = tmp_path / "out"
    assert cli.main(["simulate", str(out), "--count", "4", "--shape", "16,16,8", "--quiet"]) == EXIT_INTERRUPTED
    assert sorted(p.name for p in (out / "raw").iterdir()) == sorted(p.name for p in (out / "target").iterdir())
    assert len(json.loads((out / "params.json").read_text())["pairs"]) == 2 == len(list((out / "raw").iterdir()))
    assert f"the 2 finished pair(s) in {out} are kept" in capsys.readouterr().err


def test_ctrl_c_while_a_classifier_data_set_loads_is_an_interrupt_not_an_error(tmp_path: Path, monkeypatch, capsys):
    from voxelstudio.core.errors import Cancelled
    from voxelstudio.tasks import datasets

    def interrupted(*args, **kwargs):
        raise Cancelled("loading the data set")

    monkeypatch.setattr(datasets, "load_class_folder", interrupted)
    argv = ["train-classifier", str(tmp_path), "--out", str(tmp_path / "m.keras"), "--epochs", "1", "--quiet"]
    assert cli.main(argv) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "voxelstudio: loading the data set cancelled\n"
    assert not (tmp_path / "m.keras").exists()


def test_ctrl_c_during_the_last_pair_of_simulate_keeps_it_and_exits_130(tmp_path: Path, monkeypatch):
    from voxelstudio.tasks import simulate

    save = simulate.save_volume

    def save_then_interrupt(volume, path, **options):
        written = save(volume, path, **options)
        if Path(path).parent.name == "raw":
            os.kill(os.getpid(), signal.SIGINT)  # during the only pair: it finishes, the run still was interrupted
        return written

    monkeypatch.setattr(simulate, "save_volume", save_then_interrupt)
    out = tmp_path / "out"
    assert cli.main(["simulate", str(out), "--count", "1", "--shape", "16,16,8", "--quiet"]) == EXIT_INTERRUPTED
    assert len(json.loads((out / "params.json").read_text())["pairs"]) == 1


def test_ctrl_c_while_a_one_tile_volume_is_denoised_keeps_it_and_exits_130(tmp_path: Path, monkeypatch, capsys):
    """A volume that fits one tile has no later point to stop at: the file is finished and kept, and the exit code
    says the run was interrupted."""
    import numpy as np

    from voxelstudio.core.volume import Volume
    from voxelstudio.io import save_volume
    from voxelstudio.ml import inference

    scan = save_volume(Volume(np.random.default_rng(0).random((24, 24, 8), dtype=np.float32)), tmp_path / "s.tif")
    predict = inference.predict_volume

    def predict_then_interrupt(*args, **kwargs):
        result = predict(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(inference, "predict_volume", predict_then_interrupt)
    code = cli.main(["denoise", str(scan), "--out-dir", str(tmp_path / "out"), "--quiet"])
    assert code == EXIT_INTERRUPTED and (tmp_path / "out" / "s.mat").exists()
    assert "interrupted after the last file was written" in capsys.readouterr().err


def test_the_progress_bar_appears_with_the_first_report_only(capsys):
    from voxelstudio.cli.progress import tqdm_report
    from voxelstudio.core.progress import Progress

    with tqdm_report("evaluate"):
        pass  # a command that fails before its first report
    assert capsys.readouterr().err == ""
    with tqdm_report("evaluate") as report:
        report(Progress(1, 2, "grids"))
    drawn = [line for line in capsys.readouterr().err.replace("\r", "\n").split("\n") if line.strip()]
    assert drawn[0].startswith("evaluate: grids:  50%|") and "1/2" in drawn[0]  # first drawn with its numbers
    assert not any("0it" in line or (line.startswith("evaluate: ") and "grids" not in line) for line in drawn)


def test_a_stage_without_a_count_renames_the_bar_and_leaves_it_where_it_is(capsys):
    from voxelstudio.cli.progress import tqdm_report
    from voxelstudio.core.progress import Progress

    with tqdm_report("train") as report:
        report(Progress(4, 4, "training"))
        report(Progress(None, None, "measuring where the model puts beads"))  # it failed here before
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("train: measuring where the model puts beads: 100%") and "4/4" in last
    with tqdm_report("calibrate") as report:  # a stage first: an open-ended bar from 0
        report(Progress(None, None, "finding beads"))
    assert "calibrate: finding beads: 0it" in capsys.readouterr().err
