"""Colormap names: Fiji's channel colours and Fire, matplotlib's maps, ``_r`` for inverted, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from voxelstudio.render.colormaps import COLORMAPS, colormap, colormap_name, colormap_rgb, split_name


def test_channel_colours_fire_and_inversion():
    assert colormap_rgb("green")[[0, -1]].tolist() == [[0, 0, 0], [0, 255, 0]]
    assert colormap_rgb("magenta")[-1].tolist() == [255, 0, 255]
    assert colormap_rgb("cyan")[-1].tolist() == [0, 255, 255]
    fire = colormap_rgb("fire")
    assert fire[0].tolist() == [0, 0, 0] and fire[-1].tolist() == [255, 255, 255]
    assert fire[128, 0] > fire[128, 2]  # red before it turns yellow and white
    np.testing.assert_array_equal(colormap_rgb("fire_r"), fire[::-1])
    assert split_name(colormap_name("inferno", True)) == ("inferno", True) and split_name("RdBu_r") == ("RdBu", True)
    assert all(colormap(name) is not None for name in COLORMAPS)


def test_unknown_colormap_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown colormap 'nope'.*green"):
        colormap("nope")
