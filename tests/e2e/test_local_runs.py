"""The whole pipeline under LocalDagRunner, for real: real TFX components, in-process Beam, a SQLite MLMD store.

Runs on a 2,000-row slice of the bundled data with two small candidate models and few training steps (the
session's ``first_run``, see conftest.py). One pipeline home is shared by a chain of fixtures (cold run -> re-run
-> re-run -> tuner run -> a run nobody passes), because each step is about what the previous one left behind; the
runs that stop at the validation gate use homes of their own.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from small_run import CANDIDATES, DOWNSTREAM, SLICE_ROWS, SMALL_RUN, UPSTREAM_OF_EVALUATORS
from taxi_rows import read_rows, serialized_example, write_csv

from cli import summary
from models import features
from models.trainer import HYPERPARAMETERS_FILE
from pipeline import names
from pipeline.config import load_config
from runners.local import LocalRun, run_local
from runs import report as run_report
from runs.store import open_sqlite


@pytest.fixture(scope="module")
def home(shared_home) -> Path:
    return shared_home


@pytest.fixture(scope="module")
def second_run(first_run, home, data_slice) -> LocalRun:
    return run_local(load_config("local", SMALL_RUN, home=str(home), data_root=data_slice))


@pytest.fixture(scope="module")
def third_run(second_run, home, data_slice) -> LocalRun:
    return run_local(load_config("local", SMALL_RUN, home=str(home), data_root=data_slice))


def _states(run: LocalRun) -> dict[str, str]:
    return {component.node_id: component.state for component in run.report.components}


def test_every_component_executes_and_the_model_is_pushed(first_run, home):
    assert first_run.succeeded, first_run.error
    states = _states(first_run)
    assert set(states) == {*UPSTREAM_OF_EVALUATORS, *DOWNSTREAM}
    assert all(state == "done" for state in states.values()), states
    # Read MLMD again independently of the run's own report.
    report = run_report.read_run(open_sqlite(home / "metadata.sqlite"), "taxi")
    assert report.run_id == first_run.report.run_id
    assert {c.node_id for c in report.components if c.state == "done"} == set(states)

    assert first_run.report.blessed is True
    assert list(first_run.report.candidates) == list(CANDIDATES)
    for candidate in first_run.report.candidates.values():
        assert candidate.blessed is True
        assert candidate.metrics["auc"] >= 0.6
        assert candidate.metrics["example_count"] > 0
        assert {"binary_accuracy", "calibration"} <= set(candidate.metrics)
        assert any(name.startswith("trip_start_hour=") for name in candidate.slice_metrics)
        assert any(name.startswith("payment_type=") for name in candidate.slice_metrics)

    pushed = Path(first_run.report.pushed_path)
    assert pushed.parent == home / "serving" / "taxi"  # TF Serving layout: <serving>/<model>/<version>/
    assert pushed.name.isdigit()
    assert (pushed / "saved_model.pb").is_file()


def _selector_blessing(store, run: LocalRun):
    return _output(store, run.report.component("ModelSelector").execution_id, "ModelBlessing")


def test_the_best_blessed_candidate_is_selected_recorded_and_pushed(first_run, home):
    """Read from MLMD: the selector's recorded scores are the Evaluators' AUCs, the winner is the highest, and the
    pushed SavedModel is byte for byte the winner's Trainer output."""
    store = open_sqlite(home / "metadata.sqlite")
    blessing = _selector_blessing(store, first_run)
    winner = blessing.custom_properties["selection_winner"].string_value
    scores = {score["name"]: score for score in json.loads(blessing.custom_properties["selection_scores"].string_value)}
    aucs = {name: candidate.metrics["auc"] for name, candidate in first_run.report.candidates.items()}
    assert {name: score["score"] for name, score in scores.items()} == pytest.approx(aucs)
    assert winner == max(aucs, key=aucs.get)
    assert first_run.report.selected == winner
    assert f"{winner} has the highest auc" in blessing.custom_properties["selection_reason"].string_value

    trainer_model = _output(store, first_run.report.component(f"Trainer_{winner}").execution_id, "Model")
    assert blessing.custom_properties["current_model_id"].int_value == trainer_model.id
    trained = Path(trainer_model.uri) / "Format-Serving"
    pushed = Path(first_run.report.pushed_path)
    trained_files = sorted(p.relative_to(trained) for p in trained.rglob("*") if p.is_file())
    assert trained_files == sorted(p.relative_to(pushed) for p in pushed.rglob("*") if p.is_file())
    for relative in trained_files:
        assert (trained / relative).read_bytes() == (pushed / relative).read_bytes(), relative


def _typed(row: dict[str, str]) -> dict:
    return {name: features.parse_cell(name, text) for name, text in row.items()}


def test_pushed_model_predicts_from_raw_feature_values(first_run):
    model = tf.saved_model.load(first_run.report.pushed_path)
    assert {"serving_tf_example", "serving_default", "transform_features"} <= set(model.signatures)
    _, rows = read_rows(8)
    # The raw signature takes one value per feature and row; census tracts are almost always missing in the
    # data, so give every empty cell a value (the same one in the serialized examples below).
    rows = [{name: (text if text != "" else "0") for name, text in row.items()} for row in rows]

    raw_signature = model.signatures["serving_default"]
    specs = raw_signature.structured_input_signature[1]
    assert set(specs) == set(features.FEATURES)  # all model features, and no label
    raw = {
        name: tf.constant(
            [spec.dtype.as_numpy_dtype(row[name]) if spec.dtype != tf.string else row[name] for row in rows],
            dtype=spec.dtype,
        )
        for name, spec in specs.items()
    }
    from_raw = raw_signature(**raw)["probabilities"].numpy()
    from_examples = model.signatures["serving_tf_example"](
        examples=tf.constant([serialized_example(_typed(row)) for row in rows])
    )["probabilities"].numpy()
    assert from_raw.shape == (len(rows), 1)
    assert np.all((from_raw >= 0) & (from_raw <= 1))
    np.testing.assert_allclose(from_raw, from_examples, rtol=1e-5, atol=1e-6)
    assert from_raw.std() > 0  # the model distinguishes trips


def test_resolved_config_is_saved_with_the_run(first_run, home):
    run_dir = home / "runs" / first_run.report.run_id.replace(":", "-")
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["training"]["train_steps"] == 150
    store = open_sqlite(home / "metadata.sqlite")
    context = store.get_context_by_type_and_name("pipeline_run", first_run.report.run_id)
    assert json.loads(context.custom_properties[names.RUN_CONFIG].string_value) == saved
    # The pipeline's nodes and their upstream nodes, for the run explorer to draw the run's graph.
    dag = dict(json.loads(context.custom_properties[names.RUN_DAG].string_value))
    assert set(dag) == {*UPSTREAM_OF_EVALUATORS, *DOWNSTREAM}
    assert dag["Transform"] == ["CsvExampleGen", "ValidationGate"]
    assert context.custom_properties[names.RUN_LOG].string_value == ""  # run_local called without a log file


def test_rerun_with_nothing_changed_reuses_the_cache(second_run, third_run, first_run):
    assert second_run.succeeded and third_run.succeeded
    assert second_run.report.run_id != first_run.report.run_id
    second = _states(second_run)
    assert all(second[node] == "cached" for node in UPSTREAM_OF_EVALUATORS), second
    # The Evaluators' inputs did change: the first run's winner is now the baseline, so the second run compares
    # every candidate against it once (and records the baseline's metrics, which are the winner's own).
    assert second["Evaluator_wide_and_deep"] == second["Evaluator_linear"] == "done"
    winner = first_run.report.selected
    assert second_run.report.baseline_metrics["auc"] == pytest.approx(
        first_run.report.candidates[winner].metrics["auc"]
    )
    # From then on nothing changes, and every component is reused.
    third = _states(third_run)
    executed = {node for node, state in third.items() if state not in ("cached",)}
    assert executed == {"latest_blessed_model_resolver"}, third  # a resolver is re-evaluated, never cached


def test_tuner_searches_each_candidate_and_the_trainers_use_its_best_hyperparameters(third_run, home, data_slice):
    config = load_config(
        "local",
        [*SMALL_RUN, "tuner.enabled=true", "tuner.max_trials=2", "tuner.train_steps=30", "tuner.eval_steps=3"],
        home=str(home),
        data_root=data_slice,
    )
    run = run_local(config)
    assert run.succeeded, run.error
    states = _states(run)
    assert states["Transform"] == "cached"  # the tuners reuse the transformed data of earlier runs
    store = open_sqlite(home / "metadata.sqlite")
    for candidate in CANDIDATES:
        assert states[f"Tuner_{candidate}"] == states[f"Trainer_{candidate}"] == "done"
        tuner_execution = run.report.component(f"Tuner_{candidate}").execution_id
        # The search itself is kept: every trial's hyperparameters and score, as TFX's TunerResults artifact.
        results_file = Path(_output(store, tuner_execution, "TunerResults").uri) / "tuner_results.json"
        trials = json.loads(results_file.read_text())
        assert 1 <= len(trials) <= 2 and all(trial["score"] is not None for trial in trials), trials
        best_file = Path(_output(store, tuner_execution, "HyperParameters").uri) / "best_hyperparameters.txt"
        best = json.loads(best_file.read_text())
        top_trial = max(trials, key=lambda trial: trial["score"])
        assert top_trial["learning_rate"] == pytest.approx(best["values"]["learning_rate"])
        model_run = _output(store, run.report.component(f"Trainer_{candidate}").execution_id, "ModelRun")
        record = json.loads((Path(model_run.uri) / HYPERPARAMETERS_FILE).read_text())
        assert record["candidate"] == candidate
        used = record["hyperparameters"]
        assert used["learning_rate"] == pytest.approx(best["values"]["learning_rate"])
        if candidate == "linear":
            assert set(best["values"]) == {"learning_rate"} and used["hidden_units"] == []
            continue
        assert used["embedding_dim"] == best["values"]["embedding_dim"]
        assert used["hidden_units"] == [best["values"][f"units_{i}"] for i in range(best["values"]["num_layers"])]
        # The trained model's weights have the tuned shapes, not the config's.
        model = _output(store, run.report.component(f"Trainer_{candidate}").execution_id, "Model")
        trained = tf.saved_model.load(str(Path(model.uri) / "Format-Serving"))
        kernels = sorted(
            (v.name, tuple(v.shape)) for v in trained.model_variables if "hidden_" in v.name and "kernel" in v.name
        )
        assert [shape[1] for _, shape in kernels] == used["hidden_units"]


def test_when_no_candidate_passes_nothing_is_pushed_and_the_summary_says_why(third_run, home, data_slice):
    serving = home / "serving" / "taxi"
    versions_before = sorted(serving.iterdir())
    run = run_local(
        load_config("local", [*SMALL_RUN, "evaluation.min_auc=0.9999"], home=str(home), data_root=data_slice)
    )
    assert run.succeeded, run.error  # a run whose models are not good enough is not a failed run
    assert all(candidate.blessed is False for candidate in run.report.candidates.values())
    assert run.report.blessed is False and run.report.selected is None
    assert run.report.pushed_path == ""
    assert sorted(serving.iterdir()) == versions_before
    assert "no candidate was blessed" in run.report.selection_reason
    for candidate in CANDIDATES:
        assert f"{candidate} not blessed (auc " in run.report.selection_reason
    assert "below the minimum 0.9999" in run.report.selection_reason
    printed = io.StringIO()
    summary.print_summary(printed, run, home / "logs" / "run.log")
    assert printed.getvalue().splitlines()[-2:] == [
        "pushed: nothing (no candidate was blessed)",
        f"log: {home}/logs/run.log",
    ]
    store = open_sqlite(home / "metadata.sqlite")
    blessing = _selector_blessing(store, run)
    assert blessing.custom_properties["blessed"].int_value == 0
    assert "selection_winner" not in blessing.custom_properties


def _output(store, execution_id: int, type_name: str):
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type == e.OUTPUT]
    for artifact in store.get_artifacts_by_id([e.artifact_id for e in events]):
        if store.get_artifact_types_by_id([artifact.type_id])[0].name == type_name:
            return artifact
    raise AssertionError(f"no {type_name} output for execution {execution_id}")


def test_anomalous_data_stops_at_the_gate_and_pushes_nothing(tmp_path):
    header, rows = read_rows(SLICE_ROWS)
    for row in rows[::10]:
        row["trip_start_hour"] = "99"  # no such hour
        row["payment_type"] = "Bitcoin"  # not in the curated domain
    data = write_csv(tmp_path / "bad", header, rows)
    run = run_local(load_config("local", SMALL_RUN, home=str(tmp_path / "home"), data_root=data))

    assert run.stopped_at_gate and not run.succeeded
    states = _states(run)
    assert states["ValidationGate"] == "failed"
    assert states["ExampleValidator"] == "done"
    for downstream in ("Transform", *UPSTREAM_OF_EVALUATORS[-2:], *DOWNSTREAM[1:]):
        assert states[downstream] == "not run", states
    problems = "\n".join(run.report.anomalies)
    assert "feature 'trip_start_hour'" in problems
    assert "feature 'payment_type'" in problems
    assert "ValidationGate" in type(run.error).__name__ or "does not match the curated schema" in str(run.error)
    assert not (tmp_path / "home" / "serving").exists()


def test_an_edited_schema_file_is_imported_again_not_reused_from_the_cache(tmp_path, data_slice):
    """Same schema path, new contents: TFX keys ImportSchemaGen's cache on the path only, so without the content
    fingerprint the second run would validate against the first run's copy and blame the wrong feature."""
    curated = Path(load_config("local", []).schema.path).read_text()
    schema = tmp_path / "schema.pbtxt"
    settings = [*SMALL_RUN, f"schema.path={schema}"]
    no_cash = curated.replace('  value: "Cash"\n', "")
    assert no_cash != curated
    schema.write_text(no_cash)
    first = run_local(load_config("local", settings, home=str(tmp_path / "home"), data_root=data_slice))
    assert first.stopped_at_gate
    assert "feature 'payment_type'" in "\n".join(first.report.anomalies)

    schema.write_text(curated.replace("int_domain { min: 0 max: 23 }", "int_domain { min: 0 max: 5 }"))
    second = run_local(load_config("local", settings, home=str(tmp_path / "home"), data_root=data_slice))
    states = _states(second)
    assert states["CsvExampleGen"] == states["StatisticsGen"] == "cached"  # the data did not change
    assert states["ImportSchemaGen"] == states["ExampleValidator"] == "done"
    assert second.stopped_at_gate
    problems = "\n".join(second.report.anomalies)
    assert "feature 'trip_start_hour'" in problems and "feature 'payment_type'" not in problems
