"""VoxelStudio: view 3D microscope volumes and clean them with deep learning."""

__version__ = "0.1.0"
