"""Is a volume within a classifier's domain? Three checks, all set on data the model saw at training time and stored in
the model's metadata (``extra["domain"]``):

- **Confidence**: the rotation-voted maximum class probability must reach ``max_probability``, the 2.5th percentile
  of the validation grids' maximum probability (never above MAX_THRESHOLD: a perfect model would otherwise call
  sound volumes unknown).
- **Topology**: the Euler characteristic of the occupancy grid (components - tunnels + cavities) must lie within the
  range of the data set's grids, widened by a quarter of that range plus EULER_SLACK on each side. Objects have few
  tunnels; pure noise thresholded into a grid has hundreds to thousands, and networks are often *confident* on such
  inputs (earlier bundled classifiers called random noise "torus" at 99.99 % and "sphere" at 0.63, above their
  thresholds; the current one gives it at most 0.32), so confidence alone cannot be trusted to catch them.
- **Objects**: the count of separate objects (26-connected, at least MIN_OBJECT_VOXELS voxels) must not exceed the
  data set's 99.5th percentile by more than a quarter plus OBJECT_SLACK. A scan of many beads fitted into the grid
  holds a dozen; a grid of one shape holds one to three.

Models without ``extra["domain"]`` (models from older versions) get the documented fallback
:func:`fallback_domain`: maximum probability at least chance + FALLBACK_MARGIN, Euler characteristic at least
FALLBACK_MIN_EULER (no upper bound), at most FALLBACK_MAX_OBJECTS objects. Plain numpy and scipy, no Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

UNLIKE = "unlike the classes this model knows"
MAX_THRESHOLD = 0.6
PROBABILITY_QUANTILE = 0.025
EULER_QUANTILES = (0.005, 0.995)
EULER_SLACK = 5.0
FALLBACK_MARGIN = 0.2
FALLBACK_MIN_EULER = -20.0
MIN_OBJECT_VOXELS = 3
OBJECT_SLACK = 2.0
FALLBACK_MAX_OBJECTS = 5.0


def euler_characteristic(grid: np.ndarray) -> int:
    """Euler characteristic of the occupied voxels as closed unit cubes (26-connected): vertices - edges + faces -
    cubes. 1 for a solid ball, 2 for a hollow one, 0 for a torus; each extra component or cavity adds 1, each tunnel
    takes 1 away."""
    occupied = np.pad(np.asarray(grid) > 0, 1)

    def touched(axes: tuple[int, ...]) -> int:
        """Lattice cells (of the dimension the shifted axes leave) that touch an occupied voxel."""
        cells = occupied
        for axis in axes:
            cells = cells | np.roll(cells, 1, axis=axis)
        return int(cells.sum())

    cubes = int(occupied.sum())
    faces = sum(touched((axis,)) for axis in range(3))
    edges = sum(touched(tuple(a for a in range(3) if a != axis)) for axis in range(3))
    vertices = touched((0, 1, 2))
    return vertices - edges + faces - cubes


def count_objects(grid: np.ndarray) -> int:
    """Separate objects (26-connected) of at least MIN_OBJECT_VOXELS voxels: lone noise voxels do not count."""
    labels, count = ndimage.label(np.asarray(grid) > 0, structure=np.ones((3, 3, 3)))
    if count == 0:
        return 0
    return int(np.count_nonzero(np.bincount(labels.ravel())[1:] >= MIN_OBJECT_VOXELS))


@dataclass(frozen=True)
class Domain:
    """The thresholds of :func:`check`; ``calibrated`` False for the fallback."""

    max_probability: float
    euler_range: tuple[float, float | None]
    max_objects: float | None = None
    calibrated: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"max_probability": self.max_probability, "euler_range": list(self.euler_range),
                "max_objects": self.max_objects}  # fmt: skip

    @classmethod
    def from_metadata(cls, extra: dict[str, Any], n_classes: int) -> Domain:
        """The domain stored in a model's ``extra`` metadata, else :func:`fallback_domain`."""
        stored = extra.get("domain") if isinstance(extra, dict) else None
        try:
            low, high = stored["euler_range"]
            objects = stored.get("max_objects")
            return cls(float(stored["max_probability"]), (float(low), None if high is None else float(high)),
                       None if objects is None else float(objects))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return fallback_domain(n_classes)

    def check(self, probabilities: np.ndarray, grid: np.ndarray) -> str | None:
        """None when the volume is within the domain, else why not (a short phrase)."""
        best = float(np.max(probabilities))
        euler = euler_characteristic(grid)
        low, high = self.euler_range
        if euler < low or (high is not None and euler > high):
            expected = f"at least {low:g}" if high is None else f"{low:g} to {high:g}"
            return f"its topology is unlike the known grids' (Euler characteristic {euler}, expected {expected})"
        objects = count_objects(grid)
        if self.max_objects is not None and objects > self.max_objects:
            return f"it holds {objects} separate objects (at most {self.max_objects:g} expected)"
        if best < self.max_probability:
            return f"its highest probability {best:.2f} is below {self.max_probability:.2f}"
        return None


def fallback_domain(n_classes: int) -> Domain:
    """For models without a calibrated domain: chance + FALLBACK_MARGIN, Euler characteristic >= -20, at most 5
    objects."""
    threshold = min(1.0 / max(n_classes, 1) + FALLBACK_MARGIN, 1.0)
    return Domain(threshold, (FALLBACK_MIN_EULER, None), FALLBACK_MAX_OBJECTS, calibrated=False)


def calibrate_domain(val_probabilities: np.ndarray, grids: np.ndarray) -> Domain:
    """The domain of a model whose validation grids got ``val_probabilities`` (N, classes); ``grids`` are the data
    set's grids (training and validation), whose Euler characteristics set the topology range."""
    if len(val_probabilities) == 0 or len(grids) == 0:
        raise ValueError("calibrating a classifier's domain needs validation probabilities and grids")
    threshold = float(np.quantile(np.max(val_probabilities, axis=1), PROBABILITY_QUANTILE))
    eulers = np.array([euler_characteristic(g) for g in grids], dtype=np.float64)
    low, high = np.quantile(eulers, EULER_QUANTILES)
    widen = 0.25 * (high - low) + EULER_SLACK
    objects = float(np.quantile([count_objects(g) for g in grids], EULER_QUANTILES[1]))
    return Domain(min(threshold, MAX_THRESHOLD), (float(np.floor(low - widen)), float(np.ceil(high + widen))),
                  float(np.ceil(1.25 * objects + OBJECT_SLACK)))  # fmt: skip
