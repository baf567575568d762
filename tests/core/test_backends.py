from __future__ import annotations

import importlib.util

import pytest

from voxelstudio.core.backends import (
    BACKENDS,
    BackendError,
    check_backend,
    installed_backends,
    requested_backend,
    select_backend,
)


def test_installed_backends_are_the_importable_ones() -> None:
    expected = [name for name in BACKENDS if importlib.util.find_spec(name) is not None]
    assert installed_backends() == expected
    assert "tensorflow" in expected  # the default is a dependency


@pytest.mark.parametrize(("value", "name"), [(None, "tensorflow"), ("", "tensorflow"), (" JAX ", "jax")])
def test_requested_backend_reads_keras_backend(value, name) -> None:
    assert requested_backend({} if value is None else {"KERAS_BACKEND": value}) == name


def test_unknown_backend_names_the_installed_ones() -> None:
    with pytest.raises(BackendError) as error:
        check_backend("mxnet")
    message = str(error.value)
    assert "'mxnet' is not a Keras backend" in message and "\n" not in message
    assert message.endswith("installed backends: " + ", ".join(installed_backends()))


def test_missing_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voxelstudio.core.backends.installed_backends", lambda: ["tensorflow"])
    with pytest.raises(BackendError, match=r"torch is not installed \(pip install \"torch\"\); "):
        check_backend("torch")


def test_select_backend_exports_the_checked_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "TensorFlow")
    assert select_backend() == "tensorflow"
    import os

    assert os.environ["KERAS_BACKEND"] == "tensorflow"
