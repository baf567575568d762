"""evaluate_volumes / evaluate_files: rows per scored volume, units, and clear shape errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxelstudio.core.volume import Volume
from voxelstudio.io import save_volume
from voxelstudio.tasks.evaluate import evaluate_files, evaluate_volumes

SHAPE = (40, 40, 24)
BEADS = [(8, 8, 12), (8, 30, 11), (20, 20, 12), (31, 9, 13), (30, 30, 12), (20, 6, 11)]


def _beads(sigma: tuple[float, float, float]) -> np.ndarray:
    grid = np.indices(SHAPE, dtype=np.float64)
    return sum(np.exp(-sum((grid[i] - c[i]) ** 2 / (2 * sigma[i] ** 2) for i in range(3))) for c in BEADS)  # type: ignore[return-value]


@pytest.fixture
def volumes() -> tuple[Volume, Volume, Volume]:
    """(pred, target, raw): a close prediction, an isotropic target and an elongated hazy raw scan."""
    rng = np.random.default_rng(0)
    spacing = (0.1, 0.1, 0.2)
    target = Volume(_beads((1.2, 1.2, 1.2)), spacing=spacing, name="target")
    pred = Volume(2 * target.data + rng.normal(0, 0.02, SHAPE), spacing=spacing, name="pred")
    raw = Volume(_beads((1.5, 1.5, 3.5)) + 0.5 + rng.normal(0, 0.02, SHAPE), spacing=spacing, name="raw")
    return pred, target, raw


def test_prediction_and_raw_rows(volumes: tuple[Volume, Volume, Volume]) -> None:
    pred, target, raw = volumes
    result = evaluate_volumes(pred, target, raw)
    assert result["names"] == {"pred": "pred", "target": "target", "raw": "raw"}
    assert result["units"] == "um" and result["spacing"] == [0.1, 0.1, 0.2]
    good, baseline = result["pred"], result["raw"]
    assert good["psnr"] > baseline["psnr"] and good["ssim"] > baseline["ssim"]
    assert good["f1"] == 1.0 and good["n_target"] == len(BEADS)
    # in µm the raw beads are 3.5 x 0.2 / (1.5 x 0.1) = 4.7 times longer than wide; the target's 2 (z step is 2x)
    assert baseline["fwhm_ratio"] == pytest.approx(3.5 * 0.2 / (1.5 * 0.1), rel=0.05)
    assert good["fwhm_ratio"] == pytest.approx(2.0, rel=0.05)
    assert good["target_fwhm_ratio"] == pytest.approx(2.0, rel=0.05)
    assert "raw" not in evaluate_volumes(pred, target)


def test_scores_that_zero_beads_leave_undefined_are_none_not_perfect(volumes: tuple[Volume, Volume, Volume]) -> None:
    pred, target, _ = volumes
    rng = np.random.default_rng(1)
    no_beads = target.replace(data=rng.random(SHAPE, dtype=np.float32) * 0.01)  # texture, nothing bead-like

    nothing = evaluate_volumes(no_beads, no_beads)["pred"]  # nothing to find, nothing found
    false_beads = evaluate_volumes(pred, no_beads)["pred"]  # nothing to find, 6 found
    missed = evaluate_volumes(no_beads, target)["pred"]  # 6 to find, none found

    assert (nothing["n_target"], nothing["n_pred"]) == (0, 0)
    assert (nothing["precision"], nothing["recall"], nothing["f1"]) == (None, None, None)
    assert (false_beads["n_target"], false_beads["n_pred"]) == (0, len(BEADS))
    assert (false_beads["precision"], false_beads["recall"], false_beads["f1"]) == (0.0, None, None)
    assert (missed["n_target"], missed["n_pred"]) == (len(BEADS), 0)
    assert (missed["precision"], missed["recall"], missed["f1"]) == (None, 0.0, 0.0)


def test_each_volume_scored_is_reported(volumes: tuple[Volume, Volume, Volume]) -> None:
    """A 512x512x128 pair took minutes to score, in silence."""
    pred, target, raw = volumes
    seen = []
    evaluate_volumes(pred, target, raw, report=lambda p: seen.append((p.done, p.total, p.message)))
    assert seen == [(0, 2, "scoring the prediction"), (1, 2, "scoring the raw scan"), (2, 2, "scored")]


def test_unknown_spacing_gives_voxels(volumes: tuple[Volume, Volume, Volume]) -> None:
    pred, target, _ = (v.replace(spacing=(1.0, 1.0, 1.0)) for v in volumes)
    assert target.known_spacing is None and volumes[1].known_spacing == (0.1, 0.1, 0.2)
    result = evaluate_volumes(pred, target)
    assert result["units"] == "voxels" and result["spacing"] is None
    assert result["pred"]["fwhm_ratio"] == pytest.approx(1.0, rel=0.05)


def test_shape_mismatch_names_both_volumes(volumes: tuple[Volume, Volume, Volume]) -> None:
    pred, target, raw = volumes
    cropped = raw.replace(data=raw.data[:, :, :20], name="short")
    with pytest.raises(ValueError, match=r"raw 'short' has shape \(40, 40, 20\) but target 'target' has shape"):
        evaluate_volumes(pred, target, cropped)
    with pytest.raises(ValueError, match="prediction 'short'"):
        evaluate_volumes(cropped, target)


@pytest.mark.parametrize("level", [0.0, 128.0])
def test_a_constant_target_is_refused_instead_of_scoring_perfectly(volumes, level: float) -> None:
    pred, target, _ = volumes
    blank = Volume(np.full(target.shape, level, np.float32), name="blank")
    with pytest.raises(ValueError, match=f"target 'blank' is constant \\({level:g} everywhere\\)"):
        evaluate_volumes(pred, blank)


def test_a_target_too_small_for_ssim_is_named(volumes) -> None:
    flat = Volume(np.random.default_rng(0).random((8, 8, 2)).astype(np.float32), name="flat")
    with pytest.raises(ValueError, match=r"target 'flat' has shape \(8, 8, 2\): too small to compare"):
        evaluate_volumes(flat, flat)


def test_files_give_the_same_rows(volumes: tuple[Volume, Volume, Volume], tmp_path: Path) -> None:
    paths = [save_volume(v, tmp_path / f"{v.name}.npz") for v in volumes]
    result = evaluate_files(*paths[:2], raw_path=paths[2])
    direct = evaluate_volumes(*volumes)
    assert result["files"] == {"pred": str(paths[0]), "target": str(paths[1]), "raw": str(paths[2])}
    for role in ("pred", "raw"):
        assert result[role]["psnr"] == pytest.approx(direct[role]["psnr"], rel=1e-4)
        assert result[role]["fwhm_ratio"] == pytest.approx(direct[role]["fwhm_ratio"], rel=1e-4)
    short = save_volume(volumes[0].replace(data=volumes[0].data[:-1]), tmp_path / "short.npy")
    with pytest.raises(ValueError, match=r"short\.npy"):
        evaluate_files(short, paths[1])
