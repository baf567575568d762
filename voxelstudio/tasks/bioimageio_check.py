"""Validate a model package's rdf.yaml with ``bioimageio.spec`` when it is installed (the ``bioimageio`` extra).

The check reads the files the rdf names (their SHA-256, the test tensors' shapes against the axes) but runs no
model; it needs no network. Without ``bioimageio.spec`` nothing is checked and the caller says so.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from voxelstudio.core.errors import VolumeWriteError

SPEC_PACKAGE = "bioimageio.spec"
INSTALL_HINT = "pip install bioimageio.spec"
VALID = ("valid-format", "passed")


def spec_available() -> bool:
    """Whether ``bioimageio.spec`` can be imported."""
    try:
        return importlib.util.find_spec(SPEC_PACKAGE) is not None
    except ModuleNotFoundError:
        return False


def validate_rdf(rdf_path: Path, label: str | Path) -> str | None:
    """Validate ``rdf_path`` (beside the files it names); returns ``"bioimageio.spec <version>"``, or None when the
    package is not installed. An invalid description raises a one-line VolumeWriteError naming ``label`` and the
    first error (field and message)."""
    if not spec_available():
        return None
    import bioimageio.spec as spec

    description = spec.load_description(rdf_path, perform_io_checks=True)
    summary = description.validation_summary
    if summary.status not in VALID:
        errors = [error for detail in summary.details for error in detail.errors]
        first = errors[0] if errors else None
        where = ".".join(str(part) for part in first.loc) if first is not None else ""
        problem = f"{where}: {first.msg}" if first is not None else summary.status
        raise VolumeWriteError(label, f"bioimageio.spec {spec.__version__} rejects the package ({problem})")
    return f"{SPEC_PACKAGE} {spec.__version__}"
