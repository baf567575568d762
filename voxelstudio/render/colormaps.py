"""Colormaps microscopists know (Fiji's green, magenta, cyan, gray and Fire; matplotlib's inferno and friends), by name.

A colormap is named by a plain string everywhere (view state, scene styles, slice views, colorbars); the suffix
``_r`` inverts it, as in matplotlib. :func:`colormap` turns a name into a matplotlib ``Colormap``, which pyvista
and matplotlib both take.
"""

from __future__ import annotations

from functools import lru_cache

import matplotlib
import numpy as np
from matplotlib.colors import Colormap, LinearSegmentedColormap, ListedColormap

INVERTED_SUFFIX = "_r"
COLORMAP_LABELS = {
    "gray": "Gray",
    "green": "Green",
    "magenta": "Magenta",
    "cyan": "Cyan",
    "fire": "Fire (Fiji)",
    "inferno": "Inferno",
    "magma": "Magma",
    "viridis": "Viridis",
    "cividis": "Cividis",
    "hot": "Hot",
    "bone": "Bone",
}
COLORMAPS = tuple(COLORMAP_LABELS)
"""The colormaps offered in the window, in menu order."""

_CHANNELS = {"green": (0.0, 1.0, 0.0), "magenta": (1.0, 0.0, 1.0), "cyan": (0.0, 1.0, 1.0)}
# ImageJ's "Fire" lookup table (ij/plugin/LutLoader.java): 32 control points, interpolated to 256 colours.
_FIRE = (
    (0, 0, 1, 25, 49, 73, 98, 122, 146, 162, 173, 184, 195, 207, 217, 229, 240, 252, 255, 255, 255, 255, 255, 255,
     255, 255, 255, 255, 255, 255, 255, 255),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 35, 57, 79, 101, 117, 133, 147, 161, 175, 190, 205, 219, 234, 248,
     255, 255, 255, 255),
    (0, 61, 96, 130, 165, 192, 220, 227, 210, 181, 151, 122, 93, 64, 35, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 35, 98,
     160, 223, 255),
)  # fmt: skip


def colormap_name(base: str, invert: bool = False) -> str:
    """The name of ``base`` (one of :data:`COLORMAPS`, or another matplotlib name), inverted if ``invert``."""
    return f"{base}{INVERTED_SUFFIX}" if invert else base


def split_name(name: str) -> tuple[str, bool]:
    """``(base, inverted)`` of a colormap name: ``"green_r"`` -> ``("green", True)``."""
    if name.endswith(INVERTED_SUFFIX) and _exists(name.removesuffix(INVERTED_SUFFIX)):
        return name.removesuffix(INVERTED_SUFFIX), True
    return name, False


def _exists(base: str) -> bool:
    return base in _CHANNELS or base == "fire" or base in matplotlib.colormaps


@lru_cache(maxsize=64)
def colormap(name: str) -> Colormap:
    """The matplotlib colormap called ``name`` (``_r``: inverted); ValueError for an unknown name."""
    base, inverted = split_name(name)
    if base in _CHANNELS:
        cmap: Colormap = LinearSegmentedColormap.from_list(base, [(0.0, 0.0, 0.0), _CHANNELS[base]], N=256)
    elif base == "fire":
        points = np.linspace(0.0, 1.0, len(_FIRE[0]))
        t = np.linspace(0.0, 1.0, 256)
        rgb = np.stack([np.interp(t, points, np.asarray(channel, dtype=float) / 255.0) for channel in _FIRE], axis=1)
        cmap = ListedColormap(rgb, name="fire")
    elif base in matplotlib.colormaps:
        cmap = matplotlib.colormaps[base]
    else:
        raise ValueError(f"unknown colormap {name!r}; choose from {', '.join(COLORMAPS)}")
    return cmap.reversed() if inverted else cmap


def colormap_rgb(name: str, n: int = 256) -> np.ndarray:
    """``n`` colours of the colormap ``name`` from low to high, as an (n, 3) uint8 array."""
    return np.round(colormap(name)(np.linspace(0.0, 1.0, n))[:, :3] * 255).astype(np.uint8)
