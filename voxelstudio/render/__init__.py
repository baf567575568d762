"""3-D scene building from Volumes with pyvista/VTK: no Qt widgets, no TensorFlow.

Call these on the thread that owns the plotter (the GUI thread in the app).
"""

from voxelstudio.render.grid import (
    SCALARS,
    display_factors,
    display_image,
    nice_length,
    to_image_data,
    vtk_spacing,
    world_point,
)
from voxelstudio.render.scene import (
    MODE_LABELS,
    RENDER_MODES,
    SceneStyle,
    can_update,
    check_render_mode,
    draw_scene,
    reset_view,
    update_scene,
)
from voxelstudio.render.slices import (
    PLANES,
    centre_index,
    clamp_index,
    orthogonal_slices,
    plane_extents,
    point_at,
    rescale_index,
    slice_layout,
    voxel_at,
)
from voxelstudio.render.transfer import OpacityCurve, auto_clim, histogram, symmetric_clim

__all__ = [
    "MODE_LABELS",
    "PLANES",
    "RENDER_MODES",
    "SCALARS",
    "OpacityCurve",
    "SceneStyle",
    "auto_clim",
    "can_update",
    "centre_index",
    "check_render_mode",
    "clamp_index",
    "display_factors",
    "display_image",
    "draw_scene",
    "histogram",
    "nice_length",
    "orthogonal_slices",
    "plane_extents",
    "point_at",
    "rescale_index",
    "reset_view",
    "slice_layout",
    "symmetric_clim",
    "to_image_data",
    "update_scene",
    "voxel_at",
    "vtk_spacing",
    "world_point",
]
