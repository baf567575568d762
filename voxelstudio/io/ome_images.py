"""Where the OME-Zarr images of a store are: the root itself (an image group), or, in the bioformats2raw layout that
NGFF-Converter writes, one child group per image beside an ``OME`` group. Metadata only; :mod:`voxelstudio.io.zarr_`
reads the arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxelstudio.core.errors import VolumeReadError
from voxelstudio.io.variables import NAME_ONE


def multiscales(node: Any) -> list[dict[str, Any]] | None:
    attrs = dict(node.attrs)
    found = attrs.get("multiscales") or dict(attrs.get("ome") or {}).get("multiscales")
    return list(found) if found else None


@dataclass(frozen=True)
class ImageGroup:
    """An OME-Zarr image: the group whose ``multiscales`` names its levels, and its path in the store ("" for the
    root; "0" in the bioformats2raw layout, where the root holds one group per image and an ``OME`` group)."""

    group: Any
    prefix: str
    multiscales: list[dict[str, Any]]

    def level_name(self, level_path: str) -> str:
        return f"{self.prefix}/{level_path}" if self.prefix else level_path


def image_groups(root: Any) -> list[ImageGroup]:
    """The OME-Zarr images in a store: the root itself, else its child groups that have ``multiscales``."""
    if not hasattr(root, "members"):
        return []
    own = multiscales(root)
    if own:
        return [ImageGroup(root, "", own)]
    children = sorted(root.members(), key=lambda item: (len(item[0]), item[0]))  # series 2 before series 10
    return [
        ImageGroup(node, name, found)
        for name, node in children
        if hasattr(node, "members") and (found := multiscales(node))
    ]


def pick_image(path: Path, root: Any, wanted: str | None) -> tuple[ImageGroup | None, str | None]:
    """(the image, the level path wanted within it) for a store with OME-Zarr images; (None, wanted) for one without.

    ``wanted`` names a level of the root image ("1"), an image group ("0", its finest level) or a level in one
    ("0/1"); without it a store must hold one image."""
    images = image_groups(root)
    if not images:
        return None, wanted
    if images[0].prefix == "":
        return images[0], wanted
    if wanted is None:
        if len(images) > 1:
            listed = ", ".join(image.prefix for image in images)
            raise VolumeReadError(path, f"the store holds {len(images)} images ({listed}); name one ({NAME_ONE})")
        return images[0], None
    for image in images:
        if wanted == image.prefix:
            return image, None
        if wanted.startswith(image.prefix + "/"):
            return image, wanted[len(image.prefix) + 1 :]
    listed = ", ".join(image.prefix for image in images)
    raise VolumeReadError(path, f"no image or level named {wanted!r}; the store holds the images {listed}")
