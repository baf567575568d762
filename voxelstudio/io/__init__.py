"""voxelstudio.io."""
