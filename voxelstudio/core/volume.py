"""The Volume: a 3-D array in MATLAB index order (H, W, Z) with voxel spacing and provenance."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

Spacing = tuple[float, float, float]
"""Voxel size (y, x, z) in micrometres; 1.0 per axis when unknown."""
UNKNOWN_SPACING: Spacing = (1.0, 1.0, 1.0)
"""A Volume's spacing when its file had none."""
SPACING_GIVEN = "spacing_given"
"""Metadata flag: the user stated the spacing (``--voxel-size``), so 1, 1, 1 is a real 1 µm voxel, not unknown."""


def is_constant(data: np.ndarray) -> bool:
    """Whether ``data`` holds one value everywhere (an empty array does not): nothing to find, fit or compare."""
    return bool(data.size) and float(data.min()) == float(data.max())


def _as_spacing(spacing: Any) -> Spacing:
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must be three positive finite numbers, got {spacing!r}")
    return values  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Volume:
    """An immutable 3-D volume.

    ``data`` is a read-only float32 array indexed (H, W, Z) exactly as MATLAB and ``scipy.io.loadmat`` index it.
    """

    data: np.ndarray
    spacing: Spacing = (1.0, 1.0, 1.0)
    name: str = ""
    source: Path | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 3:
            raise ValueError(f"a Volume is 3-D (H, W, Z); got an array of shape {data.shape}")
        if data.dtype != np.float32:
            data = data.astype(np.float32)
        elif data.flags.writeable:
            data = data.copy()
        data.flags.writeable = False
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "spacing", _as_spacing(self.spacing))
        object.__setattr__(self, "source", None if self.source is None else Path(self.source))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.data.shape  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def known_spacing(self) -> Spacing | None:
        """The voxel size (y, x, z) in µm, or None when the file did not say (spacing 1, 1, 1, unless the user gave
        it: metadata ``SPACING_GIVEN``, for 1 µm voxels)."""
        given = bool(self.metadata.get(SPACING_GIVEN))
        return None if self.spacing == UNKNOWN_SPACING and not given else self.spacing

    @property
    def label(self) -> str:
        """How messages name the volume: its file, else its name, else "unnamed volume"."""
        return str(self.source) if self.source is not None else (self.name or "unnamed volume")

    def replace(self, **changes: Any) -> Volume:
        """A copy with some fields changed (``data`` included); metadata is merged, not replaced."""
        if "metadata" in changes:
            changes["metadata"] = {**self.metadata, **changes["metadata"]}
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return f"Volume(name={self.name!r}, shape={self.shape}, spacing={self.spacing})"
