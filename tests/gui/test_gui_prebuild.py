"""The hidden tabs' plots are built once the first frame is drawn, so first showing a tab does not stall a click."""

from __future__ import annotations

from voxelstudio.app import prebuild_when_idle
from voxelstudio.gui.canvas import QuietCanvas
from voxelstudio.gui.slices import SlicePanel


def test_plots_are_built_in_the_turn_after_the_first_frame_and_then_show_new_data(qtbot, session):
    canvases = [  # slice panels make their axes with their first image: nothing to build ahead
        canvas
        for canvas in session.window.findChildren(QuietCanvas)
        if not canvas.figure.axes and not isinstance(canvas, SlicePanel)
    ]
    assert len(canvases) >= 3 and session.window.train_panel.plot in canvases  # the hidden tabs': not built yet
    prebuild_when_idle(session)
    session.window.viewports.frame_rendered.emit("target")  # not the raw panel's first frame
    qtbot.wait(50)
    assert not any(canvas.figure.axes for canvas in canvases)
    session.window.viewports.frame_rendered.emit("raw")
    qtbot.waitUntil(lambda: all(canvas.figure.axes for canvas in canvases), timeout=5000)

    panel = session.window.train_panel
    panel.plot.add(1.0, 0.3)  # data arriving after the early build still reaches the plot when it is shown
    session.window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.plot.train_line.get_xydata().tolist() == [[1.0, 0.3]], timeout=5000)
