"""The voxel size as a denoiser input (numpy only): a model built with ``DenoiserConfig.spacing_input`` takes, beside
the volume, two numbers per volume that say how its voxels are shaped, and conditions every level on them (FiLM).

A bead's elongation *in voxels* depends on the z step and the pixel size as much as on the optics, so one network
trained on many microscopes is told which of them it is looking at rather than left to guess it from the data.
The features are ``ln(pixel / 0.1 µm)`` and ``ln(z step / pixel)``: zero at 0.1 µm isotropic voxels, symmetric in
coarser and finer sampling, and the second is the voxel's aspect ratio that the elongation scales with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Spacing = tuple[float, float, float]
"""A voxel size (y, x, z) in µm."""
SpacingRange = dict[str, list[float]]
SLACK = 1.25
"""How far (as a factor) beyond the voxel sizes a model was trained on it is still trusted to work."""
SPACING_FEATURES = 2
"""Numbers per volume a spacing-conditioned model takes (its second input, shape (N, 2))."""
REFERENCE_PIXEL_UM = 0.1
INPUT_NAME = "spacing"


def spacing_features(spacing: Sequence[float]) -> np.ndarray:
    """(2,) float32 features of a voxel size (y, x, z) in µm: ln(pixel / 0.1 µm), ln(z / pixel), with pixel the
    geometric mean of y and x. ValueError on sizes that are not three positive finite numbers."""
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"voxel size must be three positive finite numbers (y, x, z in µm), got {spacing!r}")
    pixel = math.sqrt(values[0] * values[1])
    return np.array([math.log(pixel / REFERENCE_PIXEL_UM), math.log(values[2] / pixel)], dtype=np.float32)


def features_batch(spacings: Sequence[Sequence[float]]) -> np.ndarray:
    """(N, 2) float32 features of N voxel sizes."""
    return np.stack([spacing_features(s) for s in spacings]).reshape(-1, SPACING_FEATURES)


def takes_spacing(model: Any) -> bool:
    """Whether a Keras model is spacing-conditioned (it has the second, ``spacing`` input)."""
    return len(getattr(model, "inputs", None) or ()) == 2


def conditioning(model: Any, spacing: Sequence[float] | None) -> np.ndarray | None:
    """The (1, 2) features ``model`` takes for volumes of voxel size ``spacing``, or None for a model that takes
    none. ValueError when a conditioned model is given no voxel size. The features do not change when y and x swap,
    so they hold for every transform of test-time augmentation."""
    if not takes_spacing(model):
        return None
    if spacing is None:
        raise ValueError("this model takes the voxel size as an input; none was given")
    return spacing_features(spacing)[None]


def with_features(batch: np.ndarray, features: np.ndarray | None) -> Any:
    """What a model is called with for ``batch`` (N, H, W, Z, C): the batch, or [batch, features] repeated per item
    when ``features`` (1, 2) are given."""
    return batch if features is None else [batch, np.repeat(features, len(batch), axis=0)]


def spacing_range(spacings: Sequence[Sequence[float]]) -> SpacingRange:
    """The range of voxel sizes a model saw in training: ``{"lateral": [low, high], "axial": [low, high]}`` in
    µm (lateral: the geometric mean of y and x), as stored in its metadata."""
    pixels = [math.sqrt(float(s[0]) * float(s[1])) for s in spacings]
    steps = [float(s[2]) for s in spacings]
    return {"lateral": [min(pixels), max(pixels)], "axial": [min(steps), max(steps)]}


def outside_range(spacing: Sequence[float], trained: SpacingRange, slack: float = SLACK) -> str | None:
    """None when ``spacing`` (y, x, z µm) lies within the range a model was trained on (:func:`spacing_range`,
    widened by the factor ``slack``), else what is outside, e.g. ``"lateral 1 µm is outside 0.05-0.25 µm"``."""
    pixel = math.sqrt(float(spacing[0]) * float(spacing[1]))
    problems = []
    for label, value in (("lateral", pixel), ("axial", float(spacing[2]))):
        low, high = (float(v) for v in trained[label])
        if not low / slack <= value <= high * slack:
            problems.append(f"{label} {value:g} µm is outside the {low:g}-{high:g} µm it was trained on")
    return "; ".join(problems) or None


@dataclass(frozen=True)
class PairSpacings:
    """Voxel sizes (y, x, z µm) of the training pairs, of the validation pairs and of the preview input (None:
    the first validation pair's, else the first training pair's)."""

    train: Sequence[Spacing]
    val: Sequence[Spacing] = ()
    preview: Spacing | None = None

    def preview_or_first(self) -> Spacing:
        return self.preview or (self.val or self.train)[0]

    def extra(self) -> dict[str, Any]:
        """What a model trained on these pairs records: the range of voxel sizes it saw (see
        :func:`outside_range`)."""
        return {"spacing_range": spacing_range([*self.train, *self.val])}


def check_spacings(
    needed: bool, spacings: PairSpacings | None, n_train: int, n_val: int, has_preview: bool
) -> PairSpacings | None:
    """``spacings`` when the model ``needed`` the voxel size (ValueError when they are missing or do not match the
    pairs), else None."""
    if not needed:
        return None
    if spacings is None:
        raise ValueError("this model takes the voxel size as an input; give the pairs' voxel sizes")
    if len(spacings.train) != n_train or len(spacings.val) != n_val:
        raise ValueError(
            f"{len(spacings.train)} + {len(spacings.val)} voxel sizes for {n_train} training and {n_val} "
            "validation pairs"
        )
    if has_preview and spacings.preview is None:
        raise ValueError("this model takes the voxel size as an input; give the preview volume's voxel size")
    for spacing in [*spacings.train, *spacings.val]:
        spacing_features(spacing)  # ValueError on a bad voxel size
    return spacings
