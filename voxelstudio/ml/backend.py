"""What differs between Keras' backends (TensorFlow, JAX, PyTorch), behind plain functions.

Every other module in ``voxelstudio.ml`` is written with ``keras.layers`` and ``keras.ops`` only. This one lists
accelerators, keeps a backend from grabbing all GPU memory, recognises out-of-memory errors, takes gradients (for
Grad-CAM), picks the mixed-precision policy and the distribution scope for training, and works around a
TensorFlow data-pipeline stall (:func:`quiet_tf_data`). The framework itself is imported inside each function, so
the module is cheap to import and a missing framework only matters when used.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from voxelstudio.core.backends import DEFAULT, LABELS, requested_backend

# Read by JAX when it starts its GPU client (first computation, after `import keras`): allocate as needed instead
# of 75% of the card at once, so a second job or the window's own OpenGL still finds memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# PyTorch's caching allocator is lazy already; expandable segments keep it from fragmenting with varied tile sizes.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")


def _keras_backend_setting() -> str:
    """The backend Keras will start: ``KERAS_BACKEND``, else the ``backend`` of Keras' own ``keras.json``."""
    if os.environ.get("KERAS_BACKEND", "").strip():
        return requested_backend()
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as file:
            return str(json.load(file).get("backend", DEFAULT)).strip().lower()
    except (OSError, ValueError, AttributeError):
        return DEFAULT


@contextlib.contextmanager
def _tensorflow_without_jax() -> Iterator[None]:
    """On the TensorFlow backend, keep TensorFlow's start from importing JAX: ``tensorflow.lite``'s converter
    utilities import it when installed (``from jax import jit``, optional there), which costs about 100 MB of every
    process's memory for a converter VoxelStudio never calls. JAX stays importable afterwards."""
    blocked = _keras_backend_setting() == "tensorflow" and "jax" not in sys.modules
    if blocked:
        sys.modules["jax"] = None  # type: ignore[assignment]  # import jax -> ImportError, which tf.lite expects
    try:
        yield
    finally:
        if blocked and sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]


with _tensorflow_without_jax():
    import keras  # after the environment above


def name() -> str:
    """The active backend: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def label() -> str:
    """The active backend's display name ("JAX")."""
    return LABELS.get(name(), name())


@dataclass(frozen=True)
class Accelerator:
    """One GPU (or Apple MPS device) the backend can use; memory in bytes when the backend tells it."""

    name: str
    memory_bytes: int | None = None
    compute_capability: tuple[int, int] | None = None


def accelerators() -> list[Accelerator]:
    """The GPUs the active backend sees (empty on a CPU-only machine). On TensorFlow, also enables memory growth."""
    backend = name()
    if backend == "tensorflow":
        return _tensorflow_gpus()
    if backend == "jax":
        return _jax_gpus()
    if backend == "torch":
        return _torch_gpus()
    return []


def _tensorflow_gpus() -> list[Accelerator]:
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):  # the runtime has started: its memory setting is fixed
            tf.config.experimental.set_memory_growth(gpu, True)
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        found.append(Accelerator(details.get("device_name", gpu.name), None, tuple(capability) if capability else None))
    return found


def _jax_gpus() -> list[Accelerator]:
    import jax

    found = []
    for device in jax.devices():
        if device.platform not in ("gpu", "cuda", "rocm"):
            continue
        stats = {}
        with contextlib.suppress(Exception):  # not every runtime reports memory
            stats = device.memory_stats() or {}
        capability = getattr(device, "compute_capability", None)
        parsed = tuple(int(p) for p in str(capability).split(".")[:2]) if capability else None
        found.append(Accelerator(device.device_kind, stats.get("bytes_limit"), parsed))  # type: ignore[arg-type]
    return found


def _torch_gpus() -> list[Accelerator]:
    import torch

    if torch.cuda.is_available():
        found = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found.append(Accelerator(props.name, int(props.total_memory), (props.major, props.minor)))
        return found
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return [Accelerator("Apple MPS")]
    return []


def versions() -> dict[str, str]:
    """Keras' version and the active backend framework's."""
    backend = name()
    module = sys.modules.get(backend) or __import__(backend)
    return {"keras": keras.__version__, backend: str(getattr(module, "__version__", "unknown"))}


def tensorflow_onednn() -> bool | None:
    """Whether TensorFlow runs its oneDNN CPU kernels (see :mod:`voxelstudio.ml`); None under another backend or
    when this TensorFlow does not say."""
    if name() != "tensorflow":
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an out-of-memory error of any loaded backend (host ``MemoryError`` included).

    TensorFlow raises ``ResourceExhaustedError``, JAX/XLA a runtime error whose message starts with
    ``RESOURCE_EXHAUSTED``, PyTorch ``torch.OutOfMemoryError``.
    """
    if isinstance(exc, MemoryError):
        return True
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(exc, tf.errors.ResourceExhaustedError):
        return True
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(exc, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(exc):
        return True
    torch = sys.modules.get("torch")
    out_of_memory = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return out_of_memory is not None and isinstance(exc, out_of_memory)


def quiet_tf_data() -> None:
    """On TensorFlow, have Keras build the ``tf.data`` pipeline of a single-worker ``PyDataset`` without autotuning.

    tf.data's autotuning thread sleeps up to a minute between optimisations, and TensorFlow 2.21 destroys an
    iterator only when that thread wakes: a fit stopped mid-epoch (a time budget, Stop) paused 6-46 s at its next
    garbage collection, which made a 1.7-minute fine-tuning take 2.4 minutes. Keras already disables autotuning for a
    ``PyDataset`` with several workers; this does the same for the others (a batch of patches takes milliseconds;
    tf.data's legacy prefetch buffer, which grows when it runs empty, needs no autotuning thread). One device only:
    a multi-GPU strategy rebuilds per-device pipelines with default options (not measured). Idempotent; nothing
    changes on JAX and PyTorch, whose loaders are not tf.data, nor when Keras' internals have moved (the fit then
    runs as before, with the stall).
    """
    if name() != "tensorflow":
        return
    try:
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        build = PyDatasetAdapter.get_tf_dataset
    except (ImportError, AttributeError):
        return
    if getattr(build, "_voxelstudio_quiet", False):
        return

    @functools.wraps(build)
    def get_tf_dataset(self: Any, *args: Any, **kwargs: Any) -> Any:
        import tensorflow as tf

        dataset = build(self, *args, **kwargs)
        if not hasattr(dataset, "with_options"):
            return dataset
        options = tf.data.Options()
        options.autotune.enabled = False
        return dataset.with_options(options)

    get_tf_dataset._voxelstudio_quiet = True  # type: ignore[attr-defined]
    PyDatasetAdapter.get_tf_dataset = get_tf_dataset


def value_and_gradient(fn: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
    """(fn(x), d fn / d x) for a scalar-valued ``fn`` of one backend tensor; both returned as numpy arrays."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
        gradient = tape.gradient(value, x)
    elif backend == "jax":
        import jax

        value, gradient = jax.value_and_grad(fn)(keras.ops.convert_to_tensor(x))
    elif backend == "torch":
        import torch

        x = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        with torch.enable_grad():
            value = fn(x)
            (gradient,) = torch.autograd.grad(value, x, allow_unused=True)
        value = value.detach()
    else:  # pragma: no cover - Keras knows no other trainable backend
        raise NotImplementedError(f"gradients on the {backend} backend")
    if gradient is None:
        return keras.ops.convert_to_numpy(value), None
    return keras.ops.convert_to_numpy(value), keras.ops.convert_to_numpy(gradient)


def mixed_precision_policy(gpus: list[Accelerator]) -> str | None:
    """ "mixed_bfloat16" on GPUs that compute in bf16 (compute capability 8.0 and newer, or unknown), else
    "mixed_float16" on older GPUs; None (stay float32) on the CPU, where reduced precision is slower."""
    if not gpus:
        return None
    capabilities = [g.compute_capability for g in gpus if g.compute_capability is not None]
    if capabilities and min(capabilities) < (8, 0):
        return "mixed_float16"
    return "mixed_bfloat16"


def jit_compile() -> bool | str:
    """What ``model.compile(jit_compile=...)`` gets: XLA on JAX (where every step is traced anyway), off on
    TensorFlow (XLA recompiles for every validation volume's shape and is no faster on the CPU) and PyTorch."""
    return "auto" if name() == "jax" else False


def strategy_kind(tf_config: str | None, gpu_count: int) -> str:
    """ "multi_worker" when ``tf_config`` (TF_CONFIG's JSON) names several workers, "mirrored" for several GPUs,
    else "default"."""
    if tf_config:
        try:
            config = json.loads(tf_config)
        except json.JSONDecodeError as exc:
            raise ValueError(f"TF_CONFIG is not valid JSON: {exc}") from exc
        cluster = config.get("cluster", {}) if isinstance(config, dict) else {}
        if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
            return "multi_worker"
    return "mirrored" if gpu_count > 1 else "default"


def tensorflow_strategy(kind: str) -> Any:
    """The ``tf.distribute`` strategy of :func:`strategy_kind`'s ``kind``."""
    import tensorflow as tf

    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def jax_distribution(gpu_count: int, *, multi_host: bool) -> Any:
    """A ``keras.distribution.DataParallel`` over every device (after ``initialize()`` for several hosts), or None
    for one device."""
    if multi_host:
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    if len(devices) < 2 and not multi_host:
        return None
    return keras.distribution.DataParallel(devices=devices)


MULTI_HOST_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES")
"""Set on every host of a multi-host JAX run (with ``KERAS_DISTRIBUTION_PROCESS_ID``); see the README."""


@contextlib.contextmanager
def distribution_scope(gpu_count: int) -> Iterator[int]:
    """Build, compile and fit models inside this; yields the number of replicas that share each batch.

    TensorFlow: a Mirrored (several GPUs) or MultiWorkerMirrored (TF_CONFIG names several workers) strategy.
    JAX: ``keras.distribution.DataParallel`` over every device (several hosts when the KERAS_DISTRIBUTION_*
    variables are set). PyTorch: one device.
    """
    backend = name()
    if backend == "tensorflow":
        strategy = tensorflow_strategy(strategy_kind(os.environ.get("TF_CONFIG"), gpu_count))
        with strategy.scope():
            yield int(strategy.num_replicas_in_sync)
        return
    if backend == "jax":
        multi_host = all(os.environ.get(v) for v in MULTI_HOST_VARIABLES)
        distribution = jax_distribution(gpu_count, multi_host=multi_host) if gpu_count > 1 or multi_host else None
        if distribution is not None:
            with distribution.scope():
                yield len(keras.distribution.list_devices())
            return
    yield 1
