"""Device-aware training recipes for the voxel classifiers (``--preset auto|cpu|gpu``). Pure; imports no Keras.

A GPU gets the papers' recipes: the full Voxception-ResNet (width 1, 3 blocks per stage) with SGD + Nesterov
momentum 0.9, batch 50 and a step decay to a tenth (Brock et al. 2016); VoxNet with the seed's Adam settings. A
2-core CPU cannot train the full VRN in minutes (measured here: width 0.125 with 3 blocks per stage costs 38 ms per
grid per training step, 55 s per epoch of 850 grids), so its VRN has one block per stage at width 0.25 (31 ms per
grid; width 0.25 costs hardly more than 0.125 because the 32^3 stem and first stage dominate) and trains with Adam,
batch 32 and a cosine decay; its VoxNet takes batches of 32 so that a few minutes buy enough optimizer steps
(measurements in benchmarks/README.md, "Classifier").

Selection is a pure function of the architecture, the requested preset and the device kind ("GPU" or "CPU", as
:func:`voxelstudio.ml.device.configure_devices` reports it), so it can be tested without a device.
"""

from __future__ import annotations

from typing import Any

PRESET_CHOICES = ("auto", "cpu", "gpu", "none")

PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("voxnet", "cpu"): {"batch_size": 32, "learning_rate": 0.001, "optimizer": "adam", "schedule": "cosine",
                        "model": {}},
    ("voxnet", "gpu"): {"batch_size": 150, "learning_rate": 0.00151, "optimizer": "adam", "schedule": "cosine",
                        "model": {}},
    ("vrn", "cpu"): {"batch_size": 32, "learning_rate": 0.001, "optimizer": "adam", "schedule": "cosine",
                     "model": {"width": 0.25, "blocks_per_stage": 1}},
    ("vrn", "gpu"): {"batch_size": 50, "learning_rate": 0.002, "optimizer": "sgd", "schedule": "step",
                     "model": {"width": 1.0, "blocks_per_stage": 3}},
}  # fmt: skip
"""Settings per (architecture, preset); ``model`` holds ClassifierConfig fields."""


def resolve_preset(preset: str, device_kind: str) -> str | None:
    """The preset to use: ``auto`` picks ``gpu`` on a GPU and ``cpu`` otherwise; ``none`` gives None."""
    if preset not in PRESET_CHOICES:
        raise ValueError(f"unknown preset {preset!r}; choose {', '.join(PRESET_CHOICES)}")
    if preset == "none":
        return None
    if preset == "auto":
        return "gpu" if device_kind.upper() == "GPU" else "cpu"
    return preset


def preset_settings(arch: str, preset: str, device_kind: str) -> tuple[str | None, dict[str, Any]]:
    """(resolved preset name, its settings for ``arch``: batch_size, learning_rate, optimizer, schedule, model)."""
    name = resolve_preset(preset, device_kind)
    if name is None:
        return None, {"model": {}}
    if (arch, name) not in PRESETS:
        raise ValueError(f"unknown classifier architecture {arch!r}")
    settings = PRESETS[(arch, name)]
    return name, {**settings, "model": dict(settings["model"])}
