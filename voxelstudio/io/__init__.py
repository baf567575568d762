"""Volume files in and out: ``load_volume`` / ``save_volume`` for .mat (v4-v7.3), .tif/.tiff (ImageJ,
OME-TIFF), .npy, .npz and .zarr/.ome.zarr stores.

Importing this package is cheap; scipy.io, h5py and tifffile load when a file of their format is first touched.
"""

from voxelstudio.core.errors import VolumeReadError, VolumeWriteError
from voxelstudio.io.api import (
    SUPPORTED_SUFFIXES,
    FileSummary,
    check_volume_file,
    import_readers,
    list_variables,
    load_volume,
    read_variable,
    save_volume,
    summarize_file,
)
from voxelstudio.io.variables import VariableInfo

__all__ = [
    "SUPPORTED_SUFFIXES",
    "FileSummary",
    "VariableInfo",
    "VolumeReadError",
    "VolumeWriteError",
    "check_volume_file",
    "import_readers",
    "list_variables",
    "load_volume",
    "read_variable",
    "save_volume",
    "summarize_file",
]
