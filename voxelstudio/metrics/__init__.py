"""voxelstudio.metrics."""
