"""voxelstudio.ml."""
