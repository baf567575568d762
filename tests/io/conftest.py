"""Fixtures for the io tests: small asymmetric volumes and the malformed-input corpus from tests/data."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


def _load_corpus_generator() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "data" / "make_bad_inputs.py"
    spec = importlib.util.spec_from_file_location("voxelstudio_tests_make_bad_inputs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BAD_INPUTS = _load_corpus_generator()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bad_input_name" in metafunc.fixturenames:
        metafunc.parametrize("bad_input_name", BAD_INPUTS.CASE_NAMES)


@pytest.fixture(scope="session")
def bad_inputs() -> ModuleType:
    """The tests/data/make_bad_inputs.py module."""
    return BAD_INPUTS


@pytest.fixture(scope="session")
def bad_inputs_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the whole malformed-input corpus (generated once per session)."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    BAD_INPUTS.make_bad_inputs(folder)
    return folder


@pytest.fixture
def asymmetric() -> np.ndarray:
    """A (5, 7, 3) float64 array whose every value is distinct, so any axis mix-up shows."""
    return np.arange(5 * 7 * 3, dtype=np.float64).reshape(5, 7, 3) * 0.5 + 1.0
