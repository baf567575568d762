"""voxelstudio.gui."""
