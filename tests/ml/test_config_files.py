"""Training configs read from JSON: every field's type is checked, errors name the field and the file."""

from __future__ import annotations

import json

import pytest

from voxelstudio.ml.classifier_config import ClassifierTrainConfig
from voxelstudio.ml.config import TrainConfig


def test_a_config_round_trips_through_json() -> None:
    for config in (TrainConfig(), ClassifierTrainConfig()):
        assert type(config).from_dict(json.loads(config.to_json())) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [([], "a TrainConfig is a JSON object, got list"),
     ({"model": "x"}, "TrainConfig field 'model' is a JSON object, got 'x'"),
     ({"loss": 5}, "TrainConfig field 'loss' is a JSON object, got 5"),
     ({"learning_rate": "x"}, "TrainConfig field 'learning_rate' must be a number, got 'x'"),
     ({"epochs": "x"}, "TrainConfig field 'epochs' must be an integer, got 'x'"),
     ({"batch_size": 1.5}, "TrainConfig field 'batch_size' must be an integer, got 1.5"),
     ({"augment": 1}, "TrainConfig field 'augment' must be true or false, got 1"),
     ({"patch_shape": "abc"}, "TrainConfig field 'patch_shape' must be a list of 3 integers, got 'abc'"),
     ({"patch_shape": [8, 8]}, "TrainConfig field 'patch_shape' must be a list of 3 integers, got \\[8, 8\\]"),
     ({"minutes": "x"}, "TrainConfig field 'minutes' must be a number or null, got 'x'"),
     ({"model": {"kernel": [3, "3", 3]}}, "DenoiserConfig field 'kernel' must be an integer, got '3'")],
)  # fmt: skip
def test_a_value_of_the_wrong_type_is_refused_by_name(data, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(data)


def test_json_numbers_and_lists_become_the_fields_types() -> None:
    config = TrainConfig.from_dict({"minutes": 3, "patch_shape": [8, 8, 8], "model": {"kernel": [3, 3, 3]}})
    assert config.minutes == 3.0 and isinstance(config.minutes, float)
    assert config.patch_shape == (8, 8, 8) and config.model.kernel == (3, 3, 3)
    assert TrainConfig.from_dict({"minutes": None}).minutes is None


def test_loading_a_file_names_it_in_every_error(tmp_path) -> None:
    missing, broken, wrong = tmp_path / "none.json", tmp_path / "broken.json", tmp_path / "wrong.json"
    broken.write_text("{epochs: 3")
    wrong.write_text('{"epochs": "many"}')
    for path, problem in [(missing, "cannot read the config file"), (broken, "Expecting property name"),
                          (wrong, "field 'epochs' must be an integer")]:  # fmt: skip
        with pytest.raises(ValueError, match=problem) as error:
            TrainConfig.load(path)
        assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_a_nested_config_given_in_part_keeps_the_outer_configs_defaults() -> None:
    """A config file that sets one loss or model field must not switch the loss or the architecture."""
    assert TrainConfig.from_dict({"loss": {"weight": 10}}).loss.name == TrainConfig().loss.name == "mse"
    model = TrainConfig.from_dict({"model": {"filters": 16}}).model
    assert (model.arch, model.filters, model.kernel) == (TrainConfig().model.arch, 16, TrainConfig().model.kernel)
    simple = TrainConfig.from_dict({"model": {"arch": "simple", "filters": 2}}).model
    assert (simple.arch, simple.filters, simple.kernel, simple.output_activation) == (
        "simple",
        2,
        (16, 16, 8),
        "linear",
    )
    assert ClassifierTrainConfig.from_dict({"model": {"width": 0.5}}).model.arch == ClassifierTrainConfig().model.arch
