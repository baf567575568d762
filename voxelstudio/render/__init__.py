"""voxelstudio.render."""
