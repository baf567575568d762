"""``python -m voxelstudio`` runs the command-line interface."""

from voxelstudio.cli import main

raise SystemExit(main())
