"""Names inside a VoxelStudio ``.keras`` file (a zip), Keras-free so that readers that must not start TensorFlow
(the window describing the bundled model) and :mod:`voxelstudio.ml.persistence` share them."""

METADATA_MEMBER = "voxelstudio.json"
"""VoxelStudio's metadata: format, versions, training config, normaliser, provenance."""
OPTIMIZER_MEMBER = "voxelstudio_optimizer.npz"
"""Optimizer variables of a training checkpoint as plain arrays: any backend can restore them (a compiled Keras
optimizer saved under PyTorch cannot be deserialised under TensorFlow)."""

DENOISER_FORMAT = "voxelstudio-denoiser"
CLASSIFIER_FORMAT = "voxelstudio-classifier"
FORMAT_VERSION = 1
"""The metadata layout this VoxelStudio writes and the newest it reads (both kinds of model)."""
