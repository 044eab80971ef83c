"""The whole pipeline under LocalDagRunner, for real: real TFX components, in-process Beam, a SQLite MLMD store.

Runs on a 2,000-row slice of the bundled data with few training steps. One pipeline home is shared by a chain of
fixtures (cold run -> re-run -> tuner run), because each step is about what the previous one left behind; the
validation-gate run uses a home of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from taxi_rows import read_rows, serialized_example, write_csv

from models import features
from models.trainer import HYPERPARAMETERS_FILE
from pipeline.config import load_config
from runners import report as run_report
from runners.local import RUN_CONFIG_PROPERTY, LocalRun, run_local

SLICE_ROWS = 2000
SMALL_RUN = [
    "training.train_steps=150",
    "training.eval_steps=5",
    "model.batch_size=64",
    "evaluation.min_auc=0.6",
]
UPSTREAM_OF_EVALUATOR = [
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "ValidationGate",
    "Transform",
    "Trainer",
]


@pytest.fixture(scope="module")
def data_slice(tmp_path_factory) -> str:
    header, rows = read_rows(SLICE_ROWS)
    return write_csv(tmp_path_factory.mktemp("data") / "slice", header, rows)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def first_run(home, data_slice) -> LocalRun:
    return run_local(load_config("local", SMALL_RUN, home=str(home), data_root=data_slice))


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
    assert set(states) == {*UPSTREAM_OF_EVALUATOR, "latest_blessed_model_resolver", "Evaluator", "Pusher"}
    assert all(state == "done" for state in states.values()), states
    # Read MLMD again independently of the run's own report.
    report = run_report.read_run(str(home / "metadata.sqlite"), "taxi")
    assert report.run_id == first_run.report.run_id
    assert {c.node_id for c in report.components if c.state == "done"} == set(states)

    assert first_run.report.blessed is True
    assert first_run.report.metrics["auc"] >= 0.6
    assert first_run.report.metrics["example_count"] > 0
    assert {"binary_accuracy", "calibration"} <= set(first_run.report.metrics)
    assert any(name.startswith("trip_start_hour=") for name in first_run.report.slice_metrics)
    assert any(name.startswith("payment_type=") for name in first_run.report.slice_metrics)

    pushed = Path(first_run.report.pushed_path)
    assert pushed.parent == home / "serving" / "taxi"  # TF Serving layout: <serving>/<model>/<version>/
    assert pushed.name.isdigit()
    assert (pushed / "saved_model.pb").is_file()


def _typed(row: dict[str, str]) -> dict:
    return {name: features.parse_cell(name, text) for name, text in row.items()}


def test_pushed_model_predicts_from_raw_feature_values(first_run):
    model = tf.saved_model.load(first_run.report.pushed_path)
    assert {"serving_default", "serving_raw", "transform_features"} <= set(model.signatures)
    _, rows = read_rows(8)
    # The raw signature takes one value per feature and row; census tracts are almost always missing in the
    # data, so give every empty cell a value (the same one in the serialized examples below).
    rows = [{name: (text if text != "" else "0") for name, text in row.items()} for row in rows]

    raw_signature = model.signatures["serving_raw"]
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
    from_examples = model.signatures["serving_default"](
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
    store = run_report.open_store(str(home / "metadata.sqlite"))
    context = store.get_context_by_type_and_name("pipeline_run", first_run.report.run_id)
    assert json.loads(context.custom_properties[RUN_CONFIG_PROPERTY].string_value) == saved


def test_rerun_with_nothing_changed_reuses_the_cache(second_run, third_run, first_run):
    assert second_run.succeeded and third_run.succeeded
    assert second_run.report.run_id != first_run.report.run_id
    second = _states(second_run)
    assert all(second[node] == "cached" for node in UPSTREAM_OF_EVALUATOR), second
    # The Evaluator's inputs did change: the first run's model is now the blessed baseline, so the second run
    # compares the candidate against it once (and records the baseline's metrics).
    assert second["Evaluator"] == "done"
    assert second_run.report.baseline_metrics["auc"] == pytest.approx(second_run.report.metrics["auc"])
    # From then on nothing changes, and every component is reused.
    third = _states(third_run)
    executed = {node for node, state in third.items() if state not in ("cached",)}
    assert executed == {"latest_blessed_model_resolver"}, third  # a resolver is re-evaluated, never cached


def test_tuner_best_hyperparameters_are_used_by_the_trainer(third_run, home, data_slice):
    config = load_config(
        "local",
        [*SMALL_RUN, "tuner.enabled=true", "tuner.max_trials=2", "tuner.train_steps=30", "tuner.eval_steps=3"],
        home=str(home),
        data_root=data_slice,
    )
    run = run_local(config)
    assert run.succeeded, run.error
    states = _states(run)
    assert states["Tuner"] == "done" and states["Trainer"] == "done"
    assert states["Transform"] == "cached"  # the tuner reuses the transformed data of earlier runs

    store = run_report.open_store(str(home / "metadata.sqlite"))
    tuner_output = _output_uri(store, run.report.component("Tuner").execution_id, "HyperParameters")
    best = json.loads((Path(tuner_output) / "best_hyperparameters.txt").read_text())["values"]
    model_run = _output_uri(store, run.report.component("Trainer").execution_id, "ModelRun")
    used = json.loads((Path(model_run) / HYPERPARAMETERS_FILE).read_text())["hyperparameters"]
    assert used["learning_rate"] == pytest.approx(best["learning_rate"])
    assert used["embedding_dim"] == best["embedding_dim"]
    assert used["hidden_units"] == [best[f"units_{i}"] for i in range(best["num_layers"])]

    # The trained model's weights have the tuned shapes, not the config's defaults.
    model_uri = _output_uri(store, run.report.component("Trainer").execution_id, "Model")
    trained = tf.saved_model.load(str(Path(model_uri) / "Format-Serving"))
    kernels = sorted(
        (v.name, tuple(v.shape)) for v in trained.model_variables if "hidden_" in v.name and "kernel" in v.name
    )
    assert [shape[1] for _, shape in kernels] == used["hidden_units"]


def _output_uri(store, execution_id: int, type_name: str) -> str:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type == e.OUTPUT]
    for artifact in store.get_artifacts_by_id([e.artifact_id for e in events]):
        if store.get_artifact_types_by_id([artifact.type_id])[0].name == type_name:
            return artifact.uri
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
    for downstream in ("Transform", "Trainer", "Evaluator", "Pusher"):
        assert states[downstream] == "not run", states
    problems = "\n".join(run.report.anomalies)
    assert "feature 'trip_start_hour'" in problems
    assert "feature 'payment_type'" in problems
    assert "ValidationGate" in type(run.error).__name__ or "does not match the curated schema" in str(run.error)
    assert not (tmp_path / "home" / "serving").exists()
