"""Jobs: what the window runs in the background, without Qt (so tests run them without a window; the CLI calls
:mod:`voxelstudio.tasks` directly).

:mod:`~voxelstudio.jobs.events` are the typed news a job reports, :mod:`~voxelstudio.jobs.runner` runs a task in a
child process and forwards those events unchanged, :mod:`~voxelstudio.jobs.train` and
:mod:`~voxelstudio.jobs.adapt` are the Train panel's jobs, :mod:`~voxelstudio.jobs.classify` the Classify panel's,
and :mod:`~voxelstudio.jobs.work` builds the window's other jobs (load, denoise, metrics, export, ...).
"""
