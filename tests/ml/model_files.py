"""Edited copies of saved model files, for tests of how loading treats their metadata."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from voxelstudio.ml.persistence import METADATA_MEMBER


def with_metadata(path: Path, out: Path, **changes: object) -> Path:
    """A copy of the model file at ``path`` with ``changes`` to its metadata (None removes a key)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == METADATA_MEMBER:
                meta = {**json.loads(data), **changes}
                data = json.dumps({k: v for k, v in meta.items() if v is not None}).encode()
            target.writestr(item, data)
    return out
