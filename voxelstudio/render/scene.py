"""Build one panel's 3-D scene from an ImageData: MIP, composite volume, isosurface or orthogonal slices.

Functions take any pyvista plotter (an off-screen ``pv.Plotter`` in tests, a ``pyvistaqt.QtInteractor`` in the
app) and must be called on the thread that owns it (the GUI thread): VTK is not thread-safe.

:func:`draw_scene` builds a scene from scratch; :func:`update_scene` shows new data of the same geometry in a scene
already drawn in the same style by handing the new dataset to the existing mappers. The second path creates no
actor, mapper or lookup table and copies nothing, which keeps a stream of training previews cheap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pyvista as pv

from voxelstudio.render.colormaps import colormap
from voxelstudio.render.grid import IMAGE_VIEW_UP, SCALARS, SOURCE_SPACING, nice_length
from voxelstudio.render.transfer import Clim, OpacityCurve

RENDER_MODES = ("mip", "composite", "isosurface", "slices")
MODE_LABELS = {
    "mip": "Maximum intensity projection",
    "composite": "Volume (opacity curve)",
    "isosurface": "Isosurface",
    "slices": "Orthogonal slices",
}
BACKGROUND = "#101418"
FOREGROUND = "#d8dee9"
ISO_COLOR = "#f0c05a"
SIGNED_ISO_COLORS = {"isosurface": "#d6604d", "isosurface-min": "#4393c3"}
"""Signed data's two isosurfaces, at +level (red: predicted brighter than the target) and -level (blue)."""
_N_COLORS = 256


def check_render_mode(mode: str) -> None:
    """ValueError unless ``mode`` is one of :data:`RENDER_MODES`."""
    if mode not in RENDER_MODES:
        raise ValueError(f"unknown render mode {mode!r}; choose from {', '.join(RENDER_MODES)}")


@dataclass(frozen=True)
class SceneStyle:
    """How one panel draws its volume. ``iso_fraction`` places the isosurface within ``clim``."""

    mode: str = "mip"
    cmap: str = "gray"
    """A colormap name (see :mod:`voxelstudio.render.colormaps`; ``_r`` inverts)."""
    clim: Clim = (0.0, 1.0)
    opacity: OpacityCurve = field(default_factory=OpacityCurve)
    iso_fraction: float = 0.5
    slice_index: tuple[int, int, int] = (0, 0, 0)
    show_scale_bar: bool = True
    draft: bool = False
    """Coarser ray casting (a fraction of the cost) for data that is replaced again soon: training previews."""
    signed: bool = False
    """Signed data with limits symmetric about 0 (a residual): opacity follows ``|value|``, so 0 is transparent, and
    MIP shows the value of largest magnitude along each ray, keeping its sign (see :func:`_add_volume`)."""

    def __post_init__(self) -> None:
        check_render_mode(self.mode)
        if not self.clim[1] > self.clim[0]:
            raise ValueError(f"contrast limits must increase, got {self.clim}")

    @property
    def iso_level(self) -> float:
        """Where the isosurface lies within ``clim``; for signed data, the magnitude of its two surfaces (at
        ``iso_fraction`` of the largest limit: 0, which the fraction's middle would give, is only noise)."""
        low, high = self.clim
        if self.signed:
            return self.iso_fraction * max(abs(low), abs(high))
        return low + self.iso_fraction * (high - low)

    def iso_surfaces(self, image: pv.ImageData) -> dict[str, pv.PolyData]:
        """The isosurface(s) of ``image`` by actor name: one, or for signed data one at each sign."""
        if not self.signed:
            return {"isosurface": image.contour([self.iso_level], scalars=SCALARS)}
        level = self.iso_level
        return {
            "isosurface": image.contour([level], scalars=SCALARS),
            "isosurface-min": image.contour([-level], scalars=SCALARS),
        }


def draw_scene(plotter: pv.BasePlotter, image: pv.ImageData, style: SceneStyle) -> None:
    """Replace everything ``plotter`` shows with ``image`` drawn in ``style``; never moves the camera (panels share
    one camera; :func:`reset_view` places it)."""
    plotter.clear_actors()
    plotter.set_background(BACKGROUND)
    plotter.add_mesh(image.outline(), color=FOREGROUND, opacity=0.35, name="outline", render=False, reset_camera=False)
    if style.mode in ("mip", "composite"):
        _add_volume(plotter, image, style)
    elif style.mode == "isosurface":
        _add_isosurface(plotter, image, style)
    else:
        _add_slices(plotter, image, style)
    if style.show_scale_bar:
        _add_scale_bar(plotter, image)


def can_update(shown: SceneStyle | None, style: SceneStyle) -> bool:
    """Whether a scene drawn in ``shown`` can take new data in ``style`` through :func:`update_scene`: the same look,
    except that the sampling may change between draft and full, and the slice planes may move."""
    if shown is None:
        return False
    return dataclasses.replace(shown, draft=style.draft, slice_index=style.slice_index) == style


def update_scene(plotter: pv.BasePlotter, image: pv.ImageData, style: SceneStyle) -> bool:
    """Point the actors that :func:`draw_scene` made for ``style`` at ``image`` (same dimensions and spacing as the
    drawn one). False, with nothing changed, when the scene lacks an actor to reuse: call :func:`draw_scene`."""
    if style.mode in ("mip", "composite"):
        inputs = {name: image for name in _volume_names(style)}
    elif style.mode == "isosurface":
        inputs = style.iso_surfaces(image)
    else:
        inputs = {f"slice-{axis}": plane for axis, plane in _slice_planes(image, style)}
    actors = plotter.actors
    if any(name not in actors or not data.n_points for name, data in inputs.items()):
        return False
    for name, data in inputs.items():
        actors[name].mapper.SetInputData(data)
        if name.startswith("volume"):
            _set_sampling(actors[name].mapper, image, style.draft)
    plotter.renderer.Modified()
    return True


def _volume_names(style: SceneStyle) -> tuple[str, ...]:
    """The volume actors of a MIP or composite scene: a signed MIP has a second one, for the minimum."""
    return ("volume", "volume-min") if style.signed and style.mode == "mip" else ("volume",)


def _volume_opacity(style: SceneStyle, name: str) -> str | np.ndarray:
    """The opacity transfer function of one volume actor, as pyvista takes it: a name, or an array as long as the
    colour table in 0..255 units (taken as is)."""
    if style.signed:
        side = {"volume": 1, "volume-min": -1}[name] if style.mode == "mip" else 0
        values = style.opacity.signed_values(_N_COLORS, side, style.clim)
    elif style.mode == "mip":
        return "linear"
    else:
        values = style.opacity.values(_N_COLORS)
    return np.round(values * 255).astype(np.uint8)


def _add_volume(plotter: pv.BasePlotter, image: pv.ImageData, style: SceneStyle) -> None:
    """A ray-cast volume. MIP of signed data would show each ray's largest value, which for a residual is the
    noise just above 0 nearly everywhere (a uniform pale box) and never a negative error; so signed data gets two
    volumes on the same array: the maximum, opaque only above 0, and the minimum, opaque only below 0. Each ray
    shows the stronger of its positive and negative extremes (blended where both are strong) in the diverging
    colormap, and values near 0 stay transparent."""
    for name in _volume_names(style):
        # pyvista copies the dataset it is given (tens of ms for a 128x128x32 volume): give it a 2x2x2 stand-in,
        # then point the mapper at ``image`` itself (as update_scene does); the opacity unit distance is the image's.
        stand_in = pv.ImageData(dimensions=(2, 2, 2))
        actor = plotter.add_volume(
            stand_in,
            scalars=np.zeros(stand_in.n_points, dtype=np.float32),
            opacity_unit_distance=image.length / (np.mean(image.dimensions) - 1),
            clim=style.clim,
            cmap=colormap(style.cmap),
            opacity=_volume_opacity(style, name),
            n_colors=_N_COLORS,
            blending={"volume": "maximum", "volume-min": "minimum"}[name] if style.mode == "mip" else "composite",
            mapper="gpu",
            shade=False,
            show_scalar_bar=False,
            name=name,
            render=False,
            reset_camera=False,
        )
        actor.mapper.SetInputData(image)
        _set_sampling(actor.mapper, image, style.draft)


def _set_sampling(mapper, image: pv.ImageData, draft: bool) -> None:
    """Ray-casting density. Beads are a few voxels wide: samples half a voxel apart keep small blobs from vanishing
    between them. A draft casts a ray per 2 x 2 pixels (then interpolates) and samples once per voxel: about a
    sixth of the work."""
    mapper.SetAutoAdjustSampleDistances(False)
    mapper.SetSampleDistance((1.0 if draft else 0.5) * min(image.spacing))
    mapper.SetImageSampleDistance(2.0 if draft else 1.0)


def _add_isosurface(plotter: pv.BasePlotter, image: pv.ImageData, style: SceneStyle) -> None:
    for name, surface in style.iso_surfaces(image).items():
        if surface.n_points:
            plotter.add_mesh(
                surface,
                color=SIGNED_ISO_COLORS[name] if style.signed else ISO_COLOR,
                smooth_shading=True,
                specular=0.4,
                name=name,
                render=False,
                reset_camera=False,
            )


def _slice_planes(image: pv.ImageData, style: SceneStyle) -> list[tuple[int, pv.PolyData]]:
    """The three planes through ``style.slice_index`` (a full-resolution voxel, also of a reduced image: see
    :func:`~voxelstudio.render.grid.display_image`), by VTK axis (0 = x normal, 1 = y, 2 = z)."""
    y, x, z = style.slice_index
    if SOURCE_SPACING in image.field_data:
        centre = np.asarray(image.field_data[SOURCE_SPACING], dtype=float) * np.asarray([x, y, z], dtype=float)
    else:
        centre = np.asarray(image.origin) + np.asarray(image.spacing) * np.asarray([x, y, z], dtype=float)
    # a reduced image's voxels sit at its blocks' centres, so its first and last full-resolution planes lie just
    # outside it; and VTK's cutter may miss a plane exactly on the boundary: slice a hair inside
    inset = 1e-3 * np.asarray(image.spacing, dtype=float)
    low, high = np.asarray(image.bounds[0::2], dtype=float), np.asarray(image.bounds[1::2], dtype=float)
    centre = np.clip(centre, low + inset, high - inset)
    return [(axis, image.slice(normal=normal, origin=centre.tolist())) for axis, normal in enumerate("xyz")]


def _add_slices(plotter: pv.BasePlotter, image: pv.ImageData, style: SceneStyle) -> None:
    for axis, plane in _slice_planes(image, style):
        if plane.n_points:
            plotter.add_mesh(
                plane,
                scalars=SCALARS,
                cmap=colormap(style.cmap),
                clim=style.clim,
                show_scalar_bar=False,
                lighting=False,
                name=f"slice-{axis}",
                render=False,
                reset_camera=False,
            )


def _add_scale_bar(plotter: pv.BasePlotter, image: pv.ImageData) -> None:
    """A labelled bar of round length along x, just outside the volume's bottom-front edge."""
    x0, x1, y0, y1, z0, _ = image.bounds
    length = nice_length(x1 - x0)
    y = y1 + 0.04 * (y1 - y0)
    start, end = (x0, y, z0), (x0 + length, y, z0)
    plotter.add_mesh(
        pv.Line(start, end), color=FOREGROUND, line_width=4, name="scale-bar", render=False, reset_camera=False
    )
    plotter.add_point_labels(
        [((start[0] + end[0]) / 2, y + 0.10 * (y1 - y0), z0)],  # text rises from its anchor: clear of the bar
        [f"{length:g} µm"],
        font_size=11,
        text_color=FOREGROUND,
        shape=None,
        show_points=False,
        always_visible=True,
        name="scale-label",
        render=False,
        reset_camera=False,
    )


def reset_view(plotter: pv.BasePlotter, image: pv.ImageData, *, azimuth: float = 30.0, elevation: float = 25.0) -> None:
    """Point the camera at ``image``: looking along +z with row 0 on top, turned to show the depth."""
    centre = np.asarray(image.center)
    distance = float(np.linalg.norm(np.asarray(image.bounds[1::2]) - np.asarray(image.bounds[::2])))
    plotter.camera.focal_point = tuple(centre)
    plotter.camera.position = tuple(centre - np.asarray([0.0, 0.0, 2.0 * distance]))
    plotter.camera.up = IMAGE_VIEW_UP
    plotter.camera.Azimuth(azimuth)
    plotter.camera.Elevation(elevation)
    plotter.camera.OrthogonalizeViewUp()
    plotter.reset_camera(render=False, bounds=image.bounds)
    plotter.camera.zoom(1.15)
