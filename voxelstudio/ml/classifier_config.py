"""Frozen, JSON-serialisable configurations of 3-D voxel classifiers and their training. Imports no TensorFlow.

Defaults are those of the papers and of the seed's Keras reproduction (Adam; VoxNet lr 0.00151, batch 150,
dropout 0.3; VRN lr 0.00126, batch 50, dropout 0.2), not values tuned on the procedural shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voxelstudio.ml.config import NORMALIZATIONS, _JsonConfig

CLASSIFIER_ARCHITECTURES = ("voxnet", "vrn")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "step")
ORIENTATIONS = ("upright", "any")
GRID_SIZES = (8, 128)
"""Input grid sizes the trainers offer (VoxNet and VRN were made for 32^3; 128^3 is already 64x the work)."""
VOXNET_MIN_GRID = 11
"""VoxNet's strided convolution and pooling leave nothing of a grid under 11^3."""
DEFAULT_EPOCHS = 30
"""Epochs when neither ``epochs`` nor ``minutes`` is given."""
MAX_BUDGET_EPOCHS = 100_000
"""Epoch cap of a run bounded only by its time budget."""

SEED_DEFAULTS: dict[str, dict[str, float]] = {
    "voxnet": {"learning_rate": 0.00151, "batch_size": 150, "dropout": 0.3},
    "vrn": {"learning_rate": 0.00126, "batch_size": 50, "dropout": 0.2},
}
"""Per-architecture hyper-parameters found by the seed's Bayesian search (Adam, 32^3 inputs)."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class ClassifierConfig(_JsonConfig):
    """Architecture of a voxel classifier.

    - ``voxnet`` (Maturana & Scherer 2015): Conv3D 32 @ 5^3 stride 2, Conv3D 32 @ 3^3, max-pool 2, Dense 128,
      Dense ``n_classes``; leaky ReLU 0.1; dropout ``dropout`` after the pooling and, as in the paper (0.2 / 0.3 /
      0.4), 2/3 of it after the first conv and 4/3 of it after Dense 128.
    - ``vrn`` (Brock et al. 2016, Voxception-ResNet): stem conv, four stages of ``blocks_per_stage`` Voxception
      residual blocks + one Voxception downsampling block (32 -> 64 -> 128 -> 256 -> 512 channels), a final 3^3
      residual conv, global average pooling and a Dense 512 head; ELU and ``norm`` normalisation; stochastic depth
      with keep probabilities falling linearly from 1.0 to ``min_keep_prob`` when ``stochastic_depth``.

    ``width`` multiplies every channel count (0.125 gives VRN 4..64 channels, small enough for a CPU).
    ``separable`` makes VRN's 3^3 convolutions depthwise-separable. Inputs are occupancy grids in [0, 1]; the
    model rescales them itself (VoxNet to [-1, 1], VRN to [-1, 3]).

    ``orientation`` says how the objects are posed. ``upright`` (CAD models, as in the papers): they share the z
    axis, augmentation turns them about z and voting averages rotations about z. ``any`` (the procedural shapes,
    objects in a volume): every grid is turned onto its principal axes and centred before the network, in training
    and prediction (:mod:`voxelstudio.ml.voxel_pose`), augmentation and voting flip its axes instead of turning it.
    """

    arch: str = "voxnet"
    n_classes: int = 10
    input_shape: tuple[int, int, int] = (32, 32, 32)
    width: float = 1.0
    dropout: float = 0.3
    norm: str = "batch"
    blocks_per_stage: int = 3
    stochastic_depth: bool = True
    min_keep_prob: float = 0.25
    separable: bool = False
    orientation: str = "upright"

    def validate(self) -> ClassifierConfig:
        archs = ", ".join(CLASSIFIER_ARCHITECTURES)
        _check(self.arch in CLASSIFIER_ARCHITECTURES, f"unknown classifier architecture {self.arch!r}; choose {archs}")
        _check(self.n_classes >= 2, f"a classifier needs at least 2 classes, got {self.n_classes}")
        _check(len(self.input_shape) == 3, "input_shape must be three sizes (H, W, Z)")
        _check(all(n >= 8 for n in self.input_shape), f"input sizes must be >= 8, got {self.input_shape}")
        if self.arch == "voxnet":
            _check(
                all(n >= VOXNET_MIN_GRID for n in self.input_shape),
                f"VoxNet needs inputs of at least {VOXNET_MIN_GRID}^3, got {self.input_shape}",
            )
        _check(0.0 < self.width <= 4.0, f"width must be in (0, 4], got {self.width}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        _check(self.norm in NORMALIZATIONS, f"unknown normalisation {self.norm!r}; choose from {NORMALIZATIONS}")
        _check(self.blocks_per_stage >= 1, "blocks_per_stage must be >= 1")
        _check(0.0 < self.min_keep_prob <= 1.0, f"min_keep_prob must be in (0, 1], got {self.min_keep_prob}")
        choices = ", ".join(ORIENTATIONS)
        _check(self.orientation in ORIENTATIONS, f"unknown orientation {self.orientation!r}; choose {choices}")
        return self

    @classmethod
    def for_arch(cls, arch: str, **overrides: Any) -> ClassifierConfig:
        """The paper's architecture with the seed's dropout; ``overrides`` replace any field."""
        if arch not in SEED_DEFAULTS:
            raise ValueError(f"unknown classifier architecture {arch!r}; choose {', '.join(CLASSIFIER_ARCHITECTURES)}")
        return cls(arch=arch, **{"dropout": SEED_DEFAULTS[arch]["dropout"], **overrides}).validate()


@dataclass(frozen=True)
class ClassifierTrainConfig(_JsonConfig):
    """Everything that decides a classifier training run.

    Length: ``epochs`` alone trains that many epochs; ``minutes`` alone trains until the budget ends (early stopping
    after ``patience`` epochs without a better validation loss, best weights restored); both: whichever ends first;
    neither: DEFAULT_EPOCHS. The best model by validation loss is kept either way.

    ``optimizer`` is Adam or SGD with Nesterov momentum 0.9; ``schedule`` decays the learning rate over the run's
    progress (the larger of the epoch and the time fraction): ``cosine`` to zero, ``step`` to a tenth at 2/3.
    ``batch_size`` is capped by the number of training samples. Augmentation (when ``augment``) follows VoxNet/VRN:
    a random rotation about the vertical (z) axis in steps of 360/``rotations`` degrees, flips of each horizontal
    axis with probability ``flip_prob`` and shifts of up to ``max_shift`` voxels per axis; under the model's
    ``orientation="any"`` it flips each of the three axes with probability 1/2 and shifts, without turning.
    ``vote_rotations`` rotations (at most the 8 flips under ``any``; one without ``augment``) are averaged at test
    time. ``class_weights`` weights the loss by inverse class frequency.
    The split into train/validation(/test) is stratified by class with ``seed``; ``refit`` then retrains on
    train + validation for the best epoch count. ``preset`` records the device recipe the settings came from
    (``"cpu"``, ``"gpu"``, or ``None`` when none was used).
    """

    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    epochs: int | None = None
    minutes: float | None = None
    patience: int = 30
    learning_rate: float = SEED_DEFAULTS["voxnet"]["learning_rate"]
    optimizer: str = "adam"
    schedule: str = "constant"
    batch_size: int = int(SEED_DEFAULTS["voxnet"]["batch_size"])
    augment: bool = True
    rotations: int = 12
    flip_prob: float = 0.2
    max_shift: int = 2
    vote_rotations: int = 12
    class_weights: bool = True
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    refit: bool = False
    preset: str | None = None
    seed: int = 0

    @property
    def voting_views(self) -> int:
        """The rotations to vote over by default: ``vote_rotations`` when training turned the grids (``augment``),
        one when it did not (the model never saw them turned)."""
        return self.vote_rotations if self.augment else 1

    @property
    def max_epochs(self) -> int:
        """The epoch cap: ``epochs``, else MAX_BUDGET_EPOCHS under a time budget, else DEFAULT_EPOCHS."""
        if self.epochs is not None:
            return self.epochs
        return MAX_BUDGET_EPOCHS if self.minutes is not None else DEFAULT_EPOCHS

    @property
    def budget_driven(self) -> bool:
        """True when only the time budget bounds the run (then early stopping on a long patience applies)."""
        return self.epochs is None and self.minutes is not None

    def validate(self) -> ClassifierTrainConfig:
        self.model.validate()
        _check(self.epochs is None or self.epochs >= 1, "epochs must be >= 1")
        _check(self.minutes is None or self.minutes > 0, "minutes must be > 0")
        _check(self.patience >= 1, "patience must be >= 1")
        _check(self.learning_rate > 0, "learning rate must be > 0")
        _check(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}")
        _check(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose {', '.join(SCHEDULES)}")
        _check(self.preset in (None, "cpu", "gpu"), f"unknown preset {self.preset!r}; choose cpu or gpu")
        _check(self.batch_size >= 1, "batch size must be >= 1")
        _check(self.rotations >= 1 and self.vote_rotations >= 1, "rotation counts must be >= 1")
        _check(0.0 <= self.flip_prob <= 1.0, "flip probability must be in [0, 1]")
        _check(0 <= self.max_shift <= 8, "max_shift must be in [0, 8] voxels")
        _check(self.seed >= 0 and int(self.seed) == self.seed, f"seed must be a whole number >= 0, got {self.seed!r}")
        _check(0.0 < self.val_fraction < 1.0, "validation fraction must be in (0, 1)")  # refit needs one too
        _check(0.0 <= self.test_fraction < 1.0, "test fraction must be in [0, 1)")
        _check(self.val_fraction + self.test_fraction < 1.0, "validation + test fractions must leave training data")
        return self

    @classmethod
    def for_arch(
        cls, arch: str, *, model_overrides: dict[str, Any] | None = None, **overrides: Any
    ) -> ClassifierTrainConfig:
        """The seed's Adam learning rate, batch size and dropout for ``arch``; ``overrides`` replace any field."""
        model = ClassifierConfig.for_arch(arch, **(model_overrides or {}))
        seed = SEED_DEFAULTS[arch]
        settings = {"learning_rate": seed["learning_rate"], "batch_size": int(seed["batch_size"]), **overrides}
        return cls(model=model, **settings).validate()
