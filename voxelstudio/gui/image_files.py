"""Images the window writes (screenshots), always through a temporary file: never half a PNG under the real name."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QImage

from voxelstudio.core.atomic import write_atomically


def save_image(image: QImage, path: Path) -> None:
    """Write ``image`` as a PNG at ``path`` (replacing it); VolumeWriteError naming ``path`` when it cannot."""

    def write(temporary: Path) -> None:
        if not image.save(str(temporary), "PNG"):
            raise OSError("Qt could not encode or write the PNG image")

    write_atomically(path, write, overwrite=True)
