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
            "candidates.hyperparameters.dnn.hidden_units=16, 8",
            "candidates.names=linear,dnn",
            'beam.args=["--runner=FnApiRunner"]',
        ],
        home=str(tmp_path),
    )
    assert config.training.train_steps == 42
    assert config.evaluation.min_auc == pytest.approx(0.55)
    assert config.tuner.enabled is True
    assert config.candidates.hyperparameters == {"dnn": {"hidden_units": (16, 8)}}
    assert config.candidates.names == ("linear", "dnn")
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
        ("training.train_steps=0", "training.train_steps: expected at least 1, got 0"),
        ("tuner.eval_steps=-1", "tuner.eval_steps: expected 0 (the whole eval split) or more, got -1"),
        ("evaluation.min_auc=high", "evaluation.min_auc: expected a number"),
        ("tuner.enabled=maybe", "tuner.enabled: expected true or false"),
        (
            "candidates.hyperparameters.dnn.hidden_units=[1,",
            "candidates.hyperparameters.dnn.hidden_units: '[1,' is not a valid list",
        ),
        ("candidates.hyperparameters.dnn.depth=3", "unknown hyperparameter 'depth'; known: batch_size, dropout"),
        ("candidates.hyperparameters.gbdt.learning_rate=0.1", "unknown candidate 'gbdt'; known candidates: dnn"),
        ("candidates.hyperparameters.linear.learning_rate=fast", "linear.learning_rate: expected a number"),
        ("candidates.names=linear,forest", "candidates.names: unknown candidate 'forest'; known candidates: dnn"),
        ("candidates.names=linear,linear", "candidates.names: a candidate is listed twice"),
        ("candidates.names=", "candidates.names: list at least one candidate model"),
        ("candidates.selection_metric=loss", "candidates.selection_metric: expected one of auc, binary_accuracy"),
        ("candidates.names.x=1", "'candidates.names' is not a table"),
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
    config = load_config(
        "local", ["training.train_steps=7", "candidates.hyperparameters.dnn.hidden_units=4"], home=str(tmp_path)
    )
    assert config_from_dict(config.to_dict()) == config


def test_candidate_hyperparameter_tables_merge_from_profile_and_overrides(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text(
        "[candidates]\nnames = ['dnn', 'linear']\n"
        "[candidates.hyperparameters.dnn]\nhidden_units = [32, 16]\ndropout = 0.2\n"
        "[candidates.hyperparameters.linear]\nlearning_rate = 0.05\n"
    )
    config = load_config(str(profile), ["candidates.hyperparameters.dnn.dropout=0.3"], home=str(tmp_path))
    assert config.candidates.hyperparameters == {
        "dnn": {"hidden_units": (32, 16), "dropout": 0.3},
        "linear": {"learning_rate": 0.05},
    }


def test_every_profile_lists_three_known_candidate_architectures(tmp_path):
    from pipeline.config import PROFILES_DIR

    for path in PROFILES_DIR.glob("*.toml"):
        config = load_config(path.stem, home=str(tmp_path))
        assert len(config.candidates.names) >= 3, path.name
