"""3-D scene building from Volumes with pyvista/VTK: no Qt widgets, no TensorFlow.

Call these on the thread that owns the plotter (the GUI thread in the app).
"""

from voxelstudio.render.grid import SCALARS, nice_length, to_image_data, vtk_spacing, world_point
from voxelstudio.render.scene import MODE_LABELS, RENDER_MODES, SceneStyle, draw_scene, reset_view
from voxelstudio.render.slices import PLANES, centre_index, clamp_index, orthogonal_slices, plane_extents, voxel_at
from voxelstudio.render.transfer import OpacityCurve, auto_clim, histogram, symmetric_clim

__all__ = [
    "MODE_LABELS",
    "PLANES",
    "RENDER_MODES",
    "SCALARS",
    "OpacityCurve",
    "SceneStyle",
    "auto_clim",
    "centre_index",
    "clamp_index",
    "draw_scene",
    "histogram",
    "nice_length",
    "orthogonal_slices",
    "plane_extents",
    "reset_view",
    "symmetric_clim",
    "to_image_data",
    "voxel_at",
    "vtk_spacing",
    "world_point",
]
