"""Jobs: what the window (and the CLI, and tests) run in the background, without Qt.

:mod:`~voxelstudio.jobs.events` are the typed news a job reports, :mod:`~voxelstudio.jobs.runner` runs a task in a
child process and forwards those events unchanged, :mod:`~voxelstudio.jobs.train` and
:mod:`~voxelstudio.jobs.adapt` are the Train panel's jobs.
"""
