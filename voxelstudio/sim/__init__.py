"""voxelstudio.sim."""
