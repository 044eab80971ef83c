"""Config loading: profile file, --set overrides, placeholders, and the errors users see for mistakes."""

from __future__ import annotations

import json

import pytest

from pipeline.config import PROJECT_DIR, ConfigError, config_from_dict, load_config


def _config_error(*args, **kwargs) -> str:
    """The message ``load_config`` fails with: one line, never pydantic's multi-line report."""
    with pytest.raises(ConfigError) as error:
        load_config(*args, **kwargs)
    assert "\n" not in str(error.value)
    return str(error.value)


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
        ("training.train_stepz=5", "unknown key 'training.train_stepz'; known keys in [training]: epochs, eval_steps"),
        ("trainin.train_steps=5", "unknown section [trainin]"),
        ("training.train_steps=many", "training.train_steps: expected an integer, got 'many'"),
        ("training.train_steps=0", "training.train_steps: expected at least 1, got 0"),
        ("training.epochs=-1", "training.epochs: expected 0 (train_steps decides) or more, got -1.0"),
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


def test_override_mistakes_are_one_line(tmp_path):
    for override in ("training.train_steps=many", "candidates.hyperparameters.dnn.depth=3", "candidates.names=x"):
        assert _config_error("local", [override], home=str(tmp_path)).startswith("--set: ")


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


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[training]\ntrain_steps = true\n", "mine.toml: training.train_steps: expected an integer, got True"),
        ("[training]\ntrain_steps = 2.0\n", "mine.toml: training.train_steps: expected an integer, got 2.0"),
        ("[training]\ntrain_steps = '42'\n", "mine.toml: training.train_steps: expected an integer, got '42'"),
        ("[tuner]\nenabled = 1\n", "mine.toml: tuner.enabled: expected true or false, got 1"),
        ("[evaluation]\nmin_auc = 'high'\n", "mine.toml: evaluation.min_auc: expected a number, got 'high'"),
        ("[serving]\nmodel_name = 5\n", "mine.toml: serving.model_name: expected a string, got 5"),
        ("[candidates]\nnames = 'dnn,linear'\n", "mine.toml: candidates.names: expected a list, got 'dnn,linear'"),
        ("[candidates]\nnames = ['dnn', 'forest']\n", "mine.toml: candidates.names: unknown candidate 'forest'"),
        ("[candidates.hyperparameters.dnn]\nhidden_units = [8, 'x']\n", "dnn.hidden_units[1]: expected an integer"),
        ("[training]\ntrain_stepz = 5\n", "mine.toml: unknown key 'training.train_stepz'; known keys in [training]"),
        ("[trainin]\ntrain_steps = 5\n", "mine.toml: unknown section [trainin]"),
        ("training = 5\n", "mine.toml: 'training' must be a [section] table"),
        ("home = 5\n", "mine.toml: home: expected a string, got 5"),
    ],
)
def test_a_toml_value_of_the_wrong_type_names_the_file_and_the_key(tmp_path, toml, message):
    """TOML values are typed, so they are taken as they are: no reading true as 1 or '42' as a number."""
    profile = tmp_path / "mine.toml"
    profile.write_text(toml)
    assert message in _config_error(str(profile), home=str(tmp_path))


def test_a_toml_int_is_a_float_where_a_number_is_expected(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text("[evaluation]\nmin_auc = 1\n[candidates.hyperparameters.dnn]\ndropout = 0\n")
    config = load_config(str(profile), home=str(tmp_path))
    assert config.evaluation.min_auc == 1.0 and isinstance(config.evaluation.min_auc, float)
    assert config.candidates.hyperparameters["dnn"]["dropout"] == 0.0


def test_resolved_config_round_trips_through_json(tmp_path):
    config = load_config(
        "local", ["training.train_steps=7", "candidates.hyperparameters.dnn.hidden_units=4"], home=str(tmp_path)
    )
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize("profile", ["local", "vertex", "kubeflow", "composer"])
def test_saved_json_rebuilds_the_same_config(tmp_path, profile):
    """The JSON saved with each run (MLMD, runs/<id>/config.json) is what the run explorer reads and diffs."""
    config = load_config(
        profile,
        ["candidates.hyperparameters.dnn.hidden_units=16, 8", "candidates.hyperparameters.linear.learning_rate=0.1"],
        home=str(tmp_path),
    )
    saved = config.to_json()
    rebuilt = config_from_dict(json.loads(saved))
    assert rebuilt == config
    assert rebuilt.to_json() == saved
    assert rebuilt.candidates.hyperparameters["dnn"]["hidden_units"] == (16, 8)
    assert json.loads(saved)["beam"]["args"] == list(config.beam.args)
    assert saved == json.dumps(json.loads(saved), indent=2, sort_keys=True)


def test_a_damaged_saved_config_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^saved config: training.train_steps: expected an integer, got '7'$"):
        config_from_dict({"training": {"train_steps": "7"}})
    with pytest.raises(ConfigError, match=r"^saved config: unknown section \[trainin\]; known sections: airflow"):
        config_from_dict({"trainin": {}})


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


def test_environment_overrides_come_after_the_explicit_ones(tmp_path):
    environment = {"TAXI_PIPELINE_OVERRIDES": "training.train_steps=9; tuner.enabled=true\nevaluation.min_auc=0.6;"}
    config = load_config(
        "local", ["training.train_steps=5", "training.eval_steps=3"], home=str(tmp_path), environment=environment
    )
    assert config.training.train_steps == 9
    assert config.training.eval_steps == 3
    assert config.tuner.enabled is True
    assert config.evaluation.min_auc == pytest.approx(0.6)


def test_environment_overrides_are_read_only_when_an_environment_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXI_PIPELINE_OVERRIDES", "training.train_steps=9")
    assert load_config("local", home=str(tmp_path)).training.train_steps == 300
    assert load_config("local", home=str(tmp_path), environment={}).training.train_steps == 300
    assert load_config("local", home=str(tmp_path), environment={"TAXI_PIPELINE_OVERRIDES": " ; "}) == load_config(
        "local", home=str(tmp_path)
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ("training.train_steps=many", "TAXI_PIPELINE_OVERRIDES: training.train_steps: expected an integer, got 'many'"),
        ("training.train_steps", "TAXI_PIPELINE_OVERRIDES 'training.train_steps': expected section.key=value"),
        ("trainin.x=1", "TAXI_PIPELINE_OVERRIDES: unknown section [trainin]"),
    ],
)
def test_environment_override_mistakes_name_the_variable(tmp_path, overrides, message):
    assert message in _config_error("local", home=str(tmp_path), environment={"TAXI_PIPELINE_OVERRIDES": overrides})


def test_override_values_are_stripped_and_lists_take_json(tmp_path):
    config = load_config(
        "local",
        ["tuner.enabled = yes", 'vertex.labels=["a=b", "c=d"]', "candidates.hyperparameters.dnn.hidden_units=[8, 4]"],
        home=str(tmp_path),
    )
    assert config.tuner.enabled is True
    assert config.vertex.labels == ("a=b", "c=d")
    assert config.candidates.hyperparameters["dnn"]["hidden_units"] == (8, 4)


def test_config_module_imports_no_tensorflow():
    """``--help`` stays fast: the config needs pydantic and the light ``models`` modules, nothing heavy."""
    import subprocess
    import sys

    heavy = "('tensorflow', 'tfx', 'apache_beam')"
    code = f"import sys, pipeline.config; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_DIR)
    assert result.stdout.strip() == "[]"
