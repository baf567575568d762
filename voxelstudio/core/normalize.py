"""Percentile normalisation with a before and an after step (the CSBDeep shape).

``before`` maps an input to roughly [0, 1] using its own low/high percentiles; ``after`` maps a network output back
into the units the model was trained to produce (the target's), using the statistics stored with the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_EPS = 1e-6


@dataclass(frozen=True)
class PercentileNormalizer:
    """Per-volume percentile normalisation of inputs; affine de-normalisation of outputs.

    ``out_low``/``out_high`` describe the target range seen in training, so ``after`` returns predictions in the
    target's units (the sample targets are in [0, 1]).
    """

    p_low: float = 2.0
    p_high: float = 99.8
    out_low: float = 0.0
    out_high: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_low < self.p_high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.p_low}, {self.p_high}")

    def input_range(self, x: np.ndarray) -> tuple[float, float]:
        """The (low, high) percentile values of ``x``."""
        lo, hi = np.percentile(x, [self.p_low, self.p_high])
        return float(lo), float(hi)

    def before(self, x: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
        """Map ``x`` to float32 with its low percentile at 0 and its high percentile at 1."""
        lo, hi = self.input_range(x) if value_range is None else value_range
        y = np.array(x, dtype=np.float32)  # one copy, then in place: volumes can be GBs
        y -= np.float32(lo)
        y /= np.float32(max(hi - lo, _EPS))
        return y

    def after(self, y: np.ndarray, *, copy: bool = True) -> np.ndarray:
        """Map a network output from [0, 1] back to the target's units (in place when ``copy`` is False and ``y``
        is a float32 array)."""
        y = np.array(y, dtype=np.float32, copy=copy or None)
        y *= np.float32(self.out_high - self.out_low)
        y += np.float32(self.out_low)
        return y

    def target_to_unit(self, y: np.ndarray) -> np.ndarray:
        """Map a training target into the [0, 1] range the network learns (the inverse of ``after``)."""
        return ((np.asarray(y, dtype=np.float32) - self.out_low) / max(self.out_high - self.out_low, _EPS)).astype(
            np.float32, copy=False
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> PercentileNormalizer:
        return cls(**{k: float(v) for k, v in d.items()})
