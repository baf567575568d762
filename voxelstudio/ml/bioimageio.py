"""The Keras side of BioImage Model Zoo packages: weights entries, a TensorFlow SavedModel copy, reading back.

The package itself (rdf.yaml, test tensors, cover, README, the zip) is assembled in
:mod:`voxelstudio.tasks.bioimageio_export`; what needs Keras or its backends is here.

Weights formats (bioimageio.spec 0.5): ``tensorflow_saved_model_bundle`` is a zipped SavedModel traced from our
network; it needs only TensorFlow, and is what bioimageio.core (``bioimageio test``) and deepImageJ run.
``keras_v3`` would hold our ``.keras`` file, but loading that needs VoxelStudio's custom layers (bioimageio.core
fails on it), so it is the weights only when no SavedModel can be made; otherwise it is an attachment, which is
what :func:`load_bioimageio` reads back. An ``onnx`` copy (for ONNX Runtime consumers: ilastik, bioimageio.core) is
added when tf2onnx, onnx and onnxruntime are installed and ONNX Runtime reproduces Keras on the test input.
The SavedModel is written inside the caller's (temporary) staging folder; the caller makes the package atomic.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import yaml

from voxelstudio.core.errors import ModelError
from voxelstudio.ml import backend
from voxelstudio.ml.persistence import LoadedModel, load_model

KERAS_WEIGHTS = "keras_v3"
RDF_NAME = "rdf.yaml"
CHECK_ATOL, CHECK_RTOL = 1e-4, 1e-3
"""How closely a converted copy must reproduce Keras on the test input (bioimageio.core tests at rtol 1e-3)."""


def keras_v3_entry(source: str, sha256: str) -> dict[str, Any]:
    """The ``weights.keras_v3`` entry for a ``.keras`` file saved under the running Keras and backend."""
    return {
        "source": source,
        "sha256": sha256,
        "keras_version": keras.__version__,
        "backend": [backend.name(), backend.versions().get(backend.name(), "0")],
        "comment": "VoxelStudio's .keras file; loading it needs the custom layers of voxelstudio.ml.blocks "
        "(pip install voxelstudio)",
    }


def export_saved_model(
    model: keras.Model, zip_path: Path, *, input_name: str, output_name: str
) -> dict[str, Any] | str:
    """Trace ``model`` into a TensorFlow SavedModel zipped (files at the zip's root) at ``zip_path``.

    Returns the ``weights.tensorflow_saved_model_bundle`` entry, or why there is none (a string): the exporter
    needs the TensorFlow backend, and tracing may fail. The endpoint ``serve`` (also ``serving_default``) takes
    ``input_name`` and returns ``{output_name: prediction}`` (the rdf's tensor ids).
    """
    if backend.name() != "tensorflow":
        return f"the SavedModel exporter needs KERAS_BACKEND=tensorflow, the default (running {backend.name()})"
    import tensorflow as tf

    signature = [tf.TensorSpec(shape=tuple(model.inputs[0].shape), dtype=tf.float32, name=input_name)]
    with tempfile.TemporaryDirectory(dir=zip_path.parent, prefix=".saved_model.") as folder:
        saved = Path(folder) / "saved_model"
        try:
            export = keras.export.ExportArchive()
            export.track(model)
            export.add_endpoint(  # a dict of outputs: what bioimageio.core's TFSMLayer adapter asks of "serve"
                name="serve", fn=lambda x: {output_name: model(x, training=False)}, input_signature=signature
            )
            export.write_out(str(saved), verbose=False)
        except Exception as exc:  # tracing fails in many ways; the package then carries the .keras weights
            return f"the SavedModel exporter failed ({_first_line(exc)})"
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in saved.rglob("*") if p.is_file()):
                archive.write(file, file.relative_to(saved).as_posix())
    return {
        "source": zip_path.name,
        "sha256": sha256_of(zip_path),
        "tensorflow_version": tf.__version__,
        "comment": "traced from VoxelStudio's .keras model by keras.export.ExportArchive (endpoint 'serve')",
    }


def export_onnx(
    model: keras.Model, path: Path, *, input_name: str, parent: str, check_input: np.ndarray
) -> dict[str, Any] | str:
    """Convert ``model`` to ONNX at ``path`` with Keras' exporter (tf2onnx) and check it with ONNX Runtime on
    ``check_input`` (a normalised batch) against Keras; returns the ``weights.onnx`` entry (converted from
    ``parent``), or why there is none: tf2onnx, onnx or onnxruntime missing, another backend, the converter's first
    line when it fails, or how far the copy disagrees with Keras (no ONNX copy is better than a wrong one)."""
    if backend.name() != "tensorflow":
        return f"the ONNX exporter needs KERAS_BACKEND=tensorflow, the default (running {backend.name()})"
    if not all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnx", "onnxruntime")):
        return "the ONNX copy needs tf2onnx, onnx and onnxruntime (pip install tf2onnx onnx onnxruntime)"
    import onnx
    import onnxruntime
    import tensorflow as tf

    signature = [tf.TensorSpec(shape=tuple(model.inputs[0].shape), dtype=tf.float32, name=input_name)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's notes on numpy aliases and TF internals
            model.export(str(path), format="onnx", input_signature=signature, verbose=False)
        opset = max(entry.version for entry in onnx.load(str(path)).opset_import if entry.domain in ("", "ai.onnx"))
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        converted = session.run(None, {session.get_inputs()[0].name: check_input})[0]
    except Exception as exc:  # the converter raises many types; the export goes on without ONNX
        path.unlink(missing_ok=True)
        return f"the ONNX converter failed ({_first_line(exc)})"
    expected = np.asarray(model.predict_on_batch(check_input))
    difference = float(np.max(np.abs(converted - expected)))
    if not difference <= CHECK_ATOL + CHECK_RTOL * float(np.max(np.abs(expected))):
        path.unlink(missing_ok=True)
        return f"the ONNX copy disagrees with Keras by up to {difference:.3g} on the test input (tf2onnx)"
    return {
        "source": path.name,
        "sha256": sha256_of(path),
        "opset_version": int(opset),
        "parent": parent,
        "comment": "converted from VoxelStudio's .keras model by keras.Model.export(format='onnx') (tf2onnx), "
        f"checked with ONNX Runtime on the test input (max difference {difference:.2g})",
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_rdf(path: Path) -> dict[str, Any]:
    """The rdf.yaml of a model package (a zip); ModelError naming ``path`` when there is none or it is not YAML."""
    try:
        with zipfile.ZipFile(path) as archive:
            rdf = yaml.safe_load(archive.read(RDF_NAME))
    except KeyError:
        raise ModelError(path, f"not a BioImage Model Zoo package (no {RDF_NAME} inside)") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelError(path, f"not a readable zip file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ModelError(path, f"{RDF_NAME} is not valid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise ModelError(path, f"{RDF_NAME} does not describe a model")
    return rdf


def keras_file_entry(rdf: dict[str, Any]) -> dict[str, Any] | None:
    """The rdf's entry ({source, sha256}) of a ``.keras`` file: the ``keras_v3`` weights or an attachment."""
    weights, attachments = rdf.get("weights") or {}, rdf.get("attachments") or []
    candidates = [weights.get(KERAS_WEIGHTS) if isinstance(weights, dict) else None]
    candidates += attachments if isinstance(attachments, list) else []
    for entry in candidates:
        if isinstance(entry, dict) and str(entry.get("source", "")).endswith(".keras"):
            return entry
    return None


def load_bioimageio(path: str | Path, *, trusted: bool = False) -> LoadedModel:
    """Load the denoiser of a package written by ``voxelstudio export-model --bioimageio``.

    Reads the ``.keras`` file (checked against the rdf's sha256) and the VoxelStudio metadata inside it;
    packages from other tools are refused with one line, as they lack that metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "model file not found")
    rdf = read_rdf(path)
    entry = keras_file_entry(rdf)
    if entry is None:
        raise ModelError(path, "holds no VoxelStudio .keras model; only packages made by voxelstudio can be read")
    with tempfile.TemporaryDirectory(prefix=".voxelstudio-bmz.") as folder:
        weights = Path(folder) / Path(entry["source"]).name
        try:
            with zipfile.ZipFile(path) as archive, archive.open(entry["source"]) as src, open(weights, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except KeyError:
            raise ModelError(path, f"weights file {entry['source']} named in {RDF_NAME} is missing") from None
        if entry.get("sha256") and sha256_of(weights) != entry["sha256"]:
            raise ModelError(path, f"weights file {entry['source']} does not match its sha256 in {RDF_NAME}")
        try:
            loaded = load_model(weights, trusted=trusted)
        except ModelError as exc:
            raise ModelError(path, f"{entry['source']}: {exc.problem}") from exc
    if loaded.train_config is None:
        raise ModelError(
            path, "its weights carry no VoxelStudio metadata; only packages made by voxelstudio can be read"
        )
    return replace(loaded, sha256=sha256_of(path))
