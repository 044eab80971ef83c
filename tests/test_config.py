"""Config loading: profile file, --set overrides, placeholders, and the errors users see for mistakes."""

from __future__ import annotations

import pytest

from pipeline.config import PROJECT_DIR, ConfigError, config_from_dict, load_config


def test_local_profile_resolves_placeholders_under_home(tmp_path):
    config = load_config("local", home=str(tmp_path / "home"))
    assert config.home == str(tmp_path / "home")
    assert config.metadata.sqlite_path == f"{tmp_path}/home/metadata.sqlite"
    assert config.pipeline.root == f"{tmp_path}/home/pipeline_root"
    assert config.data.root == f"{PROJECT_DIR}/data"
    assert config.serving_model_dir == f"{tmp_path}/home/serving/taxi"
    assert config.schema.path == f"{PROJECT_DIR}/schema/schema.pbtxt"


def test_overrides_are_coerced_to_the_declared_types(tmp_path):
    config = load_config(
        "local",
        [
            "training.train_steps=42",
            "evaluation.min_auc=0.55",
            "tuner.enabled=true",
            "model.hidden_units=16, 8",
            'beam.args=["--runner=FnApiRunner"]',
        ],
        home=str(tmp_path),
    )
    assert config.training.train_steps == 42
    assert config.evaluation.min_auc == pytest.approx(0.55)
    assert config.tuner.enabled is True
    assert config.model.hidden_units == (16, 8)
    assert config.beam.args == ("--runner=FnApiRunner",)


def test_command_line_shortcuts_win_over_profile(tmp_path):
    config = load_config("local", ["data.root=/elsewhere"], home=str(tmp_path), data_root=str(tmp_path / "csv"))
    assert config.data.root == str(tmp_path / "csv")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.train_stepz=5", "unknown key 'training.train_stepz'; known keys in [training]: eval_steps"),
        ("trainin.train_steps=5", "unknown section [trainin]"),
        ("training.train_steps=many", "training.train_steps: expected an integer, got 'many'"),
        ("evaluation.min_auc=high", "evaluation.min_auc: expected a number"),
        ("tuner.enabled=maybe", "tuner.enabled: expected true or false"),
        ("model.hidden_units=[1,", "model.hidden_units: '[1,' is not a valid list"),
        ("train_steps=5", "expected section.key=value"),
        ("training.train_steps", "expected section.key=value"),
    ],
)
def test_mistakes_name_the_key_and_what_is_expected(tmp_path, override, message):
    with pytest.raises(ConfigError) as error:
        load_config("local", [override], home=str(tmp_path))
    assert message in str(error.value)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"profile 'nope' not found .*known profiles: .*local"):
        load_config("nope")


def test_profile_file_errors_name_the_file(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text("[training]\ntrain_steps = 'ten'\n")
    with pytest.raises(ConfigError, match=r"mine.toml: training.train_steps: expected an integer"):
        load_config(str(profile))
    profile.write_text("[training\n")
    with pytest.raises(ConfigError, match=r"not valid TOML"):
        load_config(str(profile))


def test_resolved_config_round_trips_through_json(tmp_path):
    config = load_config("local", ["training.train_steps=7", "model.hidden_units=4"], home=str(tmp_path))
    assert config_from_dict(config.to_dict()) == config
