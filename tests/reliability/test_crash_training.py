"""kill -9 a training process after its first checkpoint; the checkpoint is whole and --resume continues from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from reliability_helpers import kill_hard, start, visible_files, wait_until, write_bead_pairs

from voxelstudio.core.atomic import is_temporary, remove_stale_temporaries

EPOCHS = 3
TINY = {
    "model": {"arch": "simple", "filters": 2, "kernel": [3, 3, 3], "n_layers": 2},
    "epochs": EPOCHS,
    "steps_per_epoch": 20,
    "batch_size": 2,
    "patch_shape": [16, 16, 8],
}


def _checkpoint_epoch(state_file: Path) -> int:
    try:
        return int(json.loads(state_file.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def _training_state(path: Path) -> dict:
    from voxelstudio.ml.persistence import load_model

    loaded = load_model(path)  # raises ModelError on a partial or corrupt file
    return loaded.metadata["extra"]["training_state"]


@pytest.fixture
def training_run(tmp_path: Path) -> tuple[list[str], Path]:
    raw, target = write_bead_pairs(tmp_path / "pairs", ["a", "b"])
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "models" / "M.keras"
    out.parent.mkdir()
    argv = ["-m", "voxelstudio", "train-denoiser", "--raw", str(raw), "--target", str(target),
            "--config", str(config), "--out", str(out)]  # fmt: skip
    return argv, out


def test_killed_training_resumes_from_its_last_checkpoint(training_run, tmp_path):
    from voxelstudio.ml.persistence import load_model

    argv, out = training_run
    last, state_file = out.with_name("M.last.keras"), out.with_name("M.last.json")
    first = start([*argv, "--quiet"], tmp_path / "first.log")
    wait_until(lambda: _checkpoint_epoch(state_file) >= 1, first, tmp_path / "first.log")
    kill_hard(first)  # mid-way through the next epoch (or while it saves): no handler runs

    # what the kill left: whole model files and no partial visible file
    state = _training_state(last)
    killed_at = state["epoch"]
    assert 1 <= killed_at < EPOCHS
    assert len(state["history"]["loss"]) == killed_at
    assert load_model(out).train_config is not None
    assert visible_files(out.parent) == ["M.keras", "M.last.json", "M.last.keras"]
    assert all(is_temporary(p) for p in out.parent.iterdir() if p.name not in visible_files(out.parent))

    log = tmp_path / "resume.log"
    second = start([*argv, "--resume"], log)  # with the progress bar: it names the epochs it trains
    assert second.wait(timeout=300) == 0, log.read_text(errors="replace")[-3000:]
    text = log.read_text(errors="replace")
    assert f"{EPOCHS} epochs; stopped: epochs" in text
    trained = {int(n) for n in re.findall(r"\bepoch=(\d+)", text)}
    assert trained and min(trained) == killed_at + 1 and max(trained) == EPOCHS  # continued, did not restart

    final = _training_state(last)
    assert final["epoch"] == EPOCHS
    assert final["history"]["loss"][:killed_at] == state["history"]["loss"]
    assert len(final["history"]["loss"]) == EPOCHS
    model = load_model(out)
    assert model.model.count_params() > 0 and model.metadata["extra"]["best_epoch"] >= 1


DIE_DURING_SECOND_CHECKPOINT = """
import os, signal, sys
from pathlib import Path
import keras
real_save, saves = keras.saving.save_model, []
def save_then_die(model, path, *args, **kwargs):
    if ".last." in Path(path).name:
        saves.append(path)
        if len(saves) == 2:  # the second checkpoint written (the run's last epoch's): half a file, then SIGKILL
            Path(path).write_bytes(b"PK\\x03\\x04 partial zip")
            os.kill(os.getpid(), signal.SIGKILL)
    return real_save(model, path, *args, **kwargs)
keras.saving.save_model = save_then_die
from voxelstudio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(training_run, tmp_path):
    from voxelstudio.ml.persistence import load_model

    argv, out = training_run
    log = tmp_path / "child.log"
    child = start(["-c", DIE_DURING_SECOND_CHECKPOINT, *argv[2:], "--quiet"], log)
    assert child.wait(timeout=300) == -9, log.read_text(errors="replace")[-3000:]
    assert _training_state(out.with_name("M.last.keras"))["epoch"] == 1  # the previous checkpoint, whole
    assert load_model(out).train_config is not None
    assert visible_files(out.parent) == ["M.keras", "M.last.json", "M.last.keras"]
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(".")]
    # Keras saves only to *.keras: the half-written file lies in a hidden temporary folder, under the final name
    assert len(leftovers) == 1 and is_temporary(leftovers[0]) and leftovers[0].name.endswith(".partial")
    assert [p.name for p in leftovers[0].iterdir()] == ["M.last.keras"]
    # the next save of that checkpoint (a resumed run) removes what the killed writer left
    assert remove_stale_temporaries(out.with_name("M.last.keras")) == leftovers
