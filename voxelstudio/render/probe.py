"""``python -m voxelstudio.render.probe``: the OpenGL vendor, renderer and version VTK gets, printed as JSON.

Run by ``voxelstudio doctor`` in a child process: creating an OpenGL context can abort a process.
"""

from __future__ import annotations

import json
import sys

SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swiftshader", "software rasterizer")


def probe() -> dict[str, object]:
    """{"vendor", "renderer", "version", "software"}: software is True for Mesa's llvmpipe and similar."""
    import pyvista

    info = pyvista.GPUInfo()
    renderer = str(info.renderer)
    return {
        "vendor": str(info.vendor),
        "renderer": renderer,
        "version": str(info.version),
        "software": any(name in renderer.lower() for name in SOFTWARE_RENDERERS),
    }


if __name__ == "__main__":
    json.dump(probe(), sys.stdout)
