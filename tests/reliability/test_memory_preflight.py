"""The memory preflight refuses a volume too large to denoise and says how much memory it needs and how much is free."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from voxelstudio.cli import main
from voxelstudio.core import memory
from voxelstudio.core.errors import VoxelStudioError
from voxelstudio.core.volume import Volume
from voxelstudio.tasks import denoise, denoise_checks

GIB = 1 << 30
SHAPE = (1024, 1024, 512)  # 2 GiB as float32, held as a zero-stride view: nothing is allocated


def _huge_volume() -> Volume:
    return Volume(np.broadcast_to(np.float32(0.5), SHAPE), name="huge")


@pytest.fixture
def one_gib_free(monkeypatch):
    monkeypatch.setattr(memory.psutil, "virtual_memory", lambda: SimpleNamespace(available=GIB, total=64 * GIB))


def _planned_gib(model_path, tta: bool = False) -> float:
    """What the prediction plan says the huge volume needs, as the message rounds it."""
    from voxelstudio.ml.inference import plan_prediction
    from voxelstudio.ml.persistence import load_model

    plan = plan_prediction(load_model(model_path).train_config.model, SHAPE, tta=tta)
    return round((plan.host_bytes + plan.tile_bytes) / GIB, 1)


def _amounts(message: str) -> tuple[float, float]:
    found = re.search(r"needs about ([0-9.]+) GiB of memory but only ([0-9.]+) GiB is available", message)
    assert found, message
    return float(found.group(1)), float(found.group(2))


def test_too_large_a_volume_is_refused_with_needed_and_available_memory(tiny_model, one_gib_free):
    with pytest.raises(VoxelStudioError) as info:
        denoise.denoise_volume(_huge_volume(), model_path=tiny_model)
    needed, available = _amounts(str(info.value))
    assert available == 1.0
    assert needed == _planned_gib(tiny_model)
    assert needed >= 4.0  # at least the float32 input copy and the output, 2 GiB each
    assert str(info.value).startswith("huge: denoising (1024, 1024, 512)") and "\n" not in str(info.value)


def test_tta_needs_more_memory_than_plain_prediction(tiny_model, one_gib_free):
    from voxelstudio.ml.persistence import load_model

    loaded = load_model(tiny_model)
    needs = []
    for tta in (False, True):
        with pytest.raises(VoxelStudioError) as info:
            denoise_checks.check_memory(_huge_volume(), loaded, tta=tta)
        needs.append(_amounts(str(info.value))[0])
    assert needs == [_planned_gib(tiny_model), _planned_gib(tiny_model, tta=True)]
    assert needs[1] >= needs[0] + 4.0  # at least a running sum and sum of squares of the views, 2 GiB each


def test_cli_refuses_with_one_line_and_exit_2(tiny_model, one_gib_free, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(denoise, "load_volume", lambda path, variable=None: _huge_volume())
    monkeypatch.setattr(denoise, "check_volume_file", lambda path, variable=None: None)  # no file: load_volume fakes it
    code = main(["denoise", str(tmp_path / "huge.npy"), "--model", str(tiny_model), "--out-dir", str(tmp_path / "o"),
                 "--quiet"])  # fmt: skip
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("voxelstudio: error: huge: denoising")
    needed, available = _amounts(line)
    assert needed == _planned_gib(tiny_model) and available == 1.0
    assert not (tmp_path / "o" / "huge.mat").exists()
