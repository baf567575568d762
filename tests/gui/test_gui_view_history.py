"""The view history on its own: steps, slider coalescing, the size limit, and forgetting limits of replaced data."""

from __future__ import annotations

import dataclasses

from voxelstudio.gui.view_history import COALESCE_S, ViewHistory, ViewSnapshot
from voxelstudio.render import OpacityCurve

START = ViewSnapshot(
    mode="mip",
    panel_modes=(),
    cmap="gray",
    invert=False,
    panel_cmaps=(),
    opacity=OpacityCurve(),
    iso_fraction=0.5,
    show_scale_bar=True,
    link_contrast=True,
    clims=(),
    camera=None,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_undo_and_redo_walk_the_steps_and_a_new_change_drops_the_redo_steps():
    history = ViewHistory(START)
    green = dataclasses.replace(START, cmap="green")
    iso = dataclasses.replace(green, mode="isosurface")
    history.record(green)
    history.record(green)  # no change: no step
    history.record(iso)
    assert history.undo() == green and history.undo() == START and history.undo() is None
    assert history.redo() == green
    history.record(dataclasses.replace(green, invert=True))
    assert not history.can_redo and history.undo() == green


def test_a_slider_drag_is_one_step_but_a_pause_or_another_setting_starts_a_new_one():
    clock = Clock()
    history = ViewHistory(START, clock=clock)
    for value in (0.4, 0.3, 0.2):
        history.record(dataclasses.replace(START, iso_fraction=value))
        clock.now += 0.1
    assert history.undo() == START
    history.redo()
    clock.now += COALESCE_S + 0.1
    history.record(dataclasses.replace(START, iso_fraction=0.1))
    assert history.undo().iso_fraction == 0.2


def test_history_is_bounded_and_forgets_limits_set_for_replaced_data():
    history = ViewHistory(START, limit=3)
    for low in range(5):
        history.record(dataclasses.replace(START, clims=(("raw", (float(low), 10.0)), ("target", (0.0, 1.0)))))
    history.forget_clim("raw")
    steps = []
    while (snapshot := history.undo()) is not None:
        steps.append(snapshot)
    assert len(steps) == 3
    assert all(snapshot.clims == (("target", (0.0, 1.0)),) for snapshot in steps)
