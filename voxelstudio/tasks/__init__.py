"""voxelstudio.tasks: long jobs as plain Qt-free functions taking report and cancel."""
