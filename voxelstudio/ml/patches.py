"""Random training patches drawn lazily from (raw, target) volume pairs (numpy only).

Nothing is materialised up front: each call cuts a few patches out of the volumes it was given. With probability
``bead_bias`` a patch is centred on a voxel whose target is at least ``threshold`` (a bead), so sparse bead scans
are not learnt as empty background. Bead voxels are kept as one compact flat-index array per volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Shape3 = tuple[int, int, int]

MAX_BEAD_INDICES = 1 << 20
"""At most this many bead voxels are remembered per volume (an even subsample when a target has more)."""


def clip_patch_shape(
    patch_shape: Sequence[int], volume_shapes: Sequence[Sequence[int]], multiple: Sequence[int] = (1, 1, 1)
) -> Shape3:
    """The patch shape every volume can supply: ``patch_shape`` clipped to the smallest volume along each axis,
    then rounded down to ``multiple`` (what the network needs)."""
    if not volume_shapes:
        raise ValueError("no volumes to draw patches from")
    clipped = []
    for axis, (p, m) in enumerate(zip(patch_shape, multiple, strict=True)):
        smallest = min(int(p), *(int(s[axis]) for s in volume_shapes))
        if smallest < m:
            what = "the patch" if smallest == int(p) else "the smallest training volume"
            raise ValueError(f"{what} is {smallest} voxel(s) along {'yxz'[axis]}; the network needs at least {m}")
        clipped.append(smallest // m * m)
    return tuple(clipped)  # type: ignore[return-value]


def bead_indices(target: np.ndarray, threshold: float) -> np.ndarray:
    """Flat indices of voxels with ``target >= threshold`` (int32 when they fit), capped at MAX_BEAD_INDICES."""
    flat = np.flatnonzero(np.asarray(target) >= threshold)
    if flat.size > MAX_BEAD_INDICES:
        flat = flat[np.linspace(0, flat.size - 1, MAX_BEAD_INDICES).astype(np.int64)]
    return flat.astype(np.int32) if target.size < np.iinfo(np.int32).max else flat


def augment_pair(raw: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same random flips along y, x, z and 90-degree xy rotation applied to both arrays.

    Rotations by 90 or 270 degrees are used only for square (H == W) patches so every patch keeps its shape.
    """
    flips = tuple(axis for axis in range(3) if rng.random() < 0.5)
    turns = int(rng.integers(4)) if raw.shape[0] == raw.shape[1] else 2 * int(rng.integers(2))
    out = []
    for array in (raw, target):
        if flips:
            array = np.flip(array, axis=flips)
        if turns:
            array = np.rot90(array, k=turns, axes=(0, 1))
        out.append(np.array(array, dtype=np.float32, order="C"))
    return out[0], out[1]


class PatchSampler:
    """Draws (raw, target) patches of one shape from a list of volume pairs.

    ``pairs`` are (raw, target) arrays of equal shape (H, W, Z), kept by reference. The patch shape is
    ``patch_shape`` clipped to the smallest volume per axis (and rounded down to ``multiple``), so every batch has
    one shape. Volumes are chosen in proportion to their voxel count.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[np.ndarray, np.ndarray]],
        patch_shape: Sequence[int],
        *,
        bead_bias: float = 0.7,
        threshold: float = 0.1,
        augment: bool = True,
        multiple: Sequence[int] = (1, 1, 1),
    ) -> None:
        if not pairs:
            raise ValueError("no volume pairs to draw patches from")
        for index, (raw, target) in enumerate(pairs):
            if raw.ndim != 3 or raw.shape != target.shape:
                raise ValueError(f"pair {index}: raw {raw.shape} and target {target.shape} must be equal 3-D shapes")
        if not 0.0 <= bead_bias <= 1.0:
            raise ValueError("bead_bias must be in [0, 1]")
        self.pairs = list(pairs)
        self.patch_shape = clip_patch_shape(patch_shape, [raw.shape for raw, _ in self.pairs], multiple)
        self.bead_bias = float(bead_bias)
        self.augment = augment
        self.beads = [bead_indices(target, threshold) for _, target in self.pairs]
        sizes = np.array([raw.size for raw, _ in self.pairs], dtype=np.float64)
        self._volume_p = sizes / sizes.sum()

    def corner(self, index: int, rng: np.random.Generator) -> Shape3:
        """Lower corner of a patch in volume ``index``: around a bead with probability ``bead_bias``, else uniform."""
        shape = self.pairs[index][0].shape
        limits = [s - p for s, p in zip(shape, self.patch_shape, strict=True)]
        beads = self.beads[index]
        if beads.size and rng.random() < self.bead_bias:
            centre = np.unravel_index(int(beads[rng.integers(beads.size)]), shape)
            return tuple(  # type: ignore[return-value]
                int(min(max(c - p // 2, 0), lim)) for c, p, lim in zip(centre, self.patch_shape, limits, strict=True)
            )
        return tuple(int(rng.integers(lim + 1)) for lim in limits)  # type: ignore[return-value]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (raw, target) float32 patch pair of shape ``patch_shape``."""
        return self.draw(rng)[1:]

    def draw(self, rng: np.random.Generator) -> tuple[int, np.ndarray, np.ndarray]:
        """(index of the pair it came from, raw, target): :meth:`sample` with its source."""
        index = int(rng.choice(len(self.pairs), p=self._volume_p))
        y, x, z = self.corner(index, rng)
        ph, pw, pz = self.patch_shape
        raw, target = self.pairs[index]
        window = (slice(y, y + ph), slice(x, x + pw), slice(z, z + pz))
        raw_patch = np.asarray(raw[window], dtype=np.float32)
        target_patch = np.asarray(target[window], dtype=np.float32)
        if self.augment:
            return (index, *augment_pair(raw_patch, target_patch, rng))
        return index, raw_patch.copy(), target_patch.copy()

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``size`` patch pairs stacked to (size, H, W, Z) float32 arrays."""
        return self.indexed_batch(size, rng)[1:]

    def indexed_batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the pair index of each patch, raws, targets): :meth:`batch` with the patches' sources."""
        indices, raws, targets = zip(*(self.draw(rng) for _ in range(size)), strict=True)
        return np.array(indices, dtype=np.intp), np.stack(raws), np.stack(targets)
