"""``tfx_compat.airflow_metadata`` against TFX's real legacy ML Metadata handle on a real SQLite store: an
Evaluator whose candidate is also its baseline, and a task that registered its execution, died and is retried by
Airflow, each registering the way TFX's legacy driver does; and a component that fails, then passes on Airflow's
retry, launched by ``AirflowLauncher``.

No ``from __future__ import annotations`` here: TFX reads the real annotation objects to build the component.
"""

import pytest

import tfx_compat

tfx_compat.prepare_tensorflow()
from ml_metadata import errors  # noqa: E402
from ml_metadata.proto import metadata_store_pb2  # noqa: E402
from tfx.dsl.component.experimental.annotations import OutputArtifact  # noqa: E402
from tfx.dsl.component.experimental.decorators import component  # noqa: E402
from tfx.orchestration import data_types  # noqa: E402
from tfx.orchestration import metadata as tfx_metadata  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from tfx_compat.airflow_metadata import AirflowLauncher, AirflowMetadata  # noqa: E402

PIPELINE = data_types.PipelineInfo("taxi", "/tmp/root", run_id="scheduled__2026-12-02T03:00:00+00:00")
TRAINER = data_types.ComponentInfo("tfx.components.trainer.component.Trainer", "Trainer_linear", PIPELINE)


def _attempt(handle: tfx_metadata.Metadata, inputs: dict, output_folder) -> tuple[metadata_store_pb2.Execution, dict]:
    """What the legacy driver does before the executor starts (``BaseDriver.pre_execution``): contexts, the
    execution with its input, then the output artifact prepared (named by run, its URI by execution) and put."""
    contexts = handle.register_pipeline_contexts_if_not_exists(PIPELINE)
    execution = handle.register_execution(PIPELINE, TRAINER, contexts, {"train_steps": 300}, inputs)
    model = standard_artifacts.Model()
    model.name = f"Trainer_linear:model:{PIPELINE.run_id}"
    model.uri = str(output_folder / str(execution.id))
    outputs = {"model": [model]}
    handle.update_execution(execution, TRAINER, output_artifacts=outputs, contexts=contexts)
    return execution, outputs


@pytest.fixture
def inputs() -> dict:
    examples = standard_artifacts.Examples()
    examples.uri = "/tmp/root/Transform/transformed_examples/7"
    return {"examples": [examples]}


@pytest.fixture
def connection(tmp_path) -> metadata_store_pb2.ConnectionConfig:
    return tfx_metadata.sqlite_metadata_connection_config(str(tmp_path / "metadata.sqlite"))


def test_tfxs_own_handle_still_fails_the_retry(connection, inputs, tmp_path):
    """A bug worked around: if this starts failing, TFX fixed it (and maybe the other one too)."""
    with tfx_metadata.Metadata(connection) as handle:
        handle.publish_artifacts(inputs["examples"])
        _attempt(handle, inputs, tmp_path)
        contexts = handle.register_pipeline_contexts_if_not_exists(PIPELINE)
        with pytest.raises(errors.AlreadyExistsError, match="event already exists"):
            handle.register_execution(PIPELINE, TRAINER, contexts, {"train_steps": 300}, inputs)


def test_the_retry_reuses_the_execution_and_its_outputs_and_completes_them(connection, inputs, tmp_path):
    with AirflowMetadata(connection) as handle:
        handle.publish_artifacts(inputs["examples"])
        first, first_outputs = _attempt(handle, inputs, tmp_path)
        # The executor starts writing, then the worker dies. Airflow's retry runs the driver again, in a new
        # process with a new handle.
        partial = tmp_path / str(first.id) / "Format-Serving"
        partial.mkdir(parents=True)
        (partial / "saved_model.pb").write_bytes(b"half")
    with AirflowMetadata(connection) as handle:
        again, outputs = _attempt(handle, inputs, tmp_path)
        assert again.id == first.id
        [model] = outputs["model"]
        assert model.id == first_outputs["model"][0].id and not partial.exists()  # its output, cleared
        handle.publish_execution(TRAINER, outputs, {"train_steps": 300})

        [execution] = handle.store.get_executions()
        assert execution.properties["state"].string_value == tfx_metadata.EXECUTION_STATE_COMPLETE
        events = handle.store.get_events_by_execution_ids([first.id])
        kinds = sorted(metadata_store_pb2.Event.Type.Name(event.type) for event in events)
        assert kinds == ["INPUT", "OUTPUT"]  # one of each: nothing of the killed attempt was put twice
        [stored] = handle.store.get_artifacts_by_type("Model")
        assert stored.state == metadata_store_pb2.Artifact.LIVE


EVALUATOR = data_types.ComponentInfo("tfx.components.evaluator.component.Evaluator", "Evaluator_linear", PIPELINE)


def _evaluate_model_against_itself(handle: tfx_metadata.Metadata) -> metadata_store_pb2.Execution:
    model = standard_artifacts.Model()
    model.uri = "/tmp/root/Trainer_linear/model/9"
    handle.publish_artifacts([model])
    contexts = handle.register_pipeline_contexts_if_not_exists(PIPELINE)
    inputs = {"model": [model], "baseline_model": [model]}
    return handle.register_execution(PIPELINE, EVALUATOR, contexts, {}, inputs)


def test_tfxs_own_handle_still_fails_when_the_candidate_is_the_baseline(connection):
    # TFX catches ML Metadata's refusal as "the run context exists", finds none, and fails an assertion.
    with tfx_metadata.Metadata(connection) as handle, pytest.raises(AssertionError) as failure:
        _evaluate_model_against_itself(handle)
    assert isinstance(failure.value.__context__, errors.AlreadyExistsError)
    assert "event already exists" in str(failure.value.__context__)


def test_one_artifact_under_two_keys_is_one_event_with_both_paths(connection):
    with AirflowMetadata(connection) as handle:
        execution = _evaluate_model_against_itself(handle)
        [event] = handle.store.get_events_by_execution_ids([execution.id])
        steps = [step.key or step.index for step in event.path.steps]
        assert steps == ["model", 0, "baseline_model", 0]  # as TFX's newer orchestrators record it


REFUSE = {"now": True}


@component
def ValidationGate(schema: OutputArtifact[standard_artifacts.Schema]) -> None:  # noqa: N802 - a component class
    """A real TFX component (a Python function component) that raises while ``REFUSE`` says so, as
    ``pipeline.components.validation_gate.ValidationGate`` does on data that failed validation (named as it is:
    the runs list tells a run stopped at the gate by the component's class)."""
    if REFUSE["now"]:
        raise ValueError("the examples failed validation: 3 anomalies")


def _launch(
    connection: metadata_store_pb2.ConnectionConfig,
    root,
    launcher_class: type = AirflowLauncher,
    run_id: str = PIPELINE.run_id,
) -> None:
    """The component run as Airflow's task runs it: TFX's legacy launcher through ``launcher_class``."""
    launcher = launcher_class.create(
        component=ValidationGate(),
        pipeline_info=data_types.PipelineInfo("taxi", str(root), run_id=run_id),
        driver_args=data_types.DriverArgs(enable_cache=True),
        metadata_connection=tfx_metadata.Metadata(connection),
        beam_pipeline_args=[],
        additional_pipeline_args={},
    )
    launcher.launch()


def test_an_error_a_retry_cannot_mend_fails_the_task_without_retries(connection, tmp_path, monkeypatch):
    """Airflow fails a task that raises AirflowFailException at once, whatever its retries say."""
    from airflow.exceptions import AirflowFailException

    class Final(AirflowLauncher):
        final_errors = (ValueError,)

    monkeypatch.setitem(REFUSE, "now", True)
    with pytest.raises(AirflowFailException, match="ValueError: the examples failed validation.*not retried"):
        _launch(connection, tmp_path, Final)
    with tfx_metadata.Metadata(connection) as handle:
        [execution] = handle.store.get_executions()
        assert execution.last_known_state == metadata_store_pb2.Execution.FAILED  # recorded all the same


def test_a_failed_executor_is_recorded_and_its_retry_completes_the_same_execution(connection, tmp_path, monkeypatch):
    """What the run explorer reads of an Airflow task that failed, then of its retry (``runs.report``)."""
    from runs import report
    from runs.catalog import RUNNING, STOPPED, RunCatalog

    monkeypatch.setitem(REFUSE, "now", True)
    with pytest.raises(ValueError, match="failed validation"):
        _launch(connection, tmp_path)
    store = tfx_metadata.Metadata(connection)
    with store as handle:
        [gate] = report.read_components(handle.store, "taxi", PIPELINE.run_id)
        assert gate.state == "failed" and "ValueError: the examples failed validation" in gate.error
        [row] = RunCatalog(handle.store, "taxi").page().rows
        assert (row.run_id, row.state) == (PIPELINE.run_id, STOPPED)

    monkeypatch.setitem(REFUSE, "now", False)  # Airflow retries the task; this time it passes
    _launch(connection, tmp_path)
    with store as handle:
        [gate] = report.read_components(handle.store, "taxi", PIPELINE.run_id)
        assert (gate.state, gate.error) == ("done", "")  # the first attempt's result is gone
        assert len(handle.store.get_executions()) == 1
        [row] = RunCatalog(handle.store, "taxi").page().rows
        assert row.state == RUNNING  # the gate passed: Airflow goes on with the next tasks


def test_each_run_records_the_pipelines_dag_and_config_for_the_graph_of_the_run_explorer(
    connection, tmp_path, monkeypatch
):
    """The run explorer draws an Airflow run's whole DAG, its nodes not reached yet waiting while the run goes on
    and "not run" once it stopped, from what the launcher records on the run's context (``runs.graph``)."""
    import json

    from pipeline import names
    from runs import compare, graph

    dag = [["ValidationGate", []], ["Transform", ["ValidationGate"]]]

    class Recording(AirflowLauncher):
        run_properties = {names.RUN_DAG: json.dumps(dag), names.RUN_CONFIG: '{"data": {"root": "gs://b/taxi"}}'}

    class RecordingOther(AirflowLauncher):
        run_properties = {names.RUN_DAG: "[]", names.RUN_CONFIG: "{}"}

    monkeypatch.setitem(REFUSE, "now", False)
    _launch(connection, tmp_path, Recording)
    _launch(connection, tmp_path, RecordingOther)  # a later task of the same run: the first one's record stays
    with tfx_metadata.Metadata(connection) as handle:
        going = graph.run_graph(handle.store, "taxi", PIPELINE.run_id)
        assert [(node.node_id, node.state) for node in going.nodes] == [
            ("ValidationGate", "done"),
            ("Transform", "waiting"),  # no failure, nothing pushed: Airflow has tasks of it still to run
        ]
        assert going.edges == [("ValidationGate", "Transform")] and not going.finished
        assert json.loads(compare.run_config_json(handle.store, PIPELINE.run_id, "taxi")) == {
            "data": {"root": "gs://b/taxi"}
        }

    monkeypatch.setitem(REFUSE, "now", True)
    stopped_run = "scheduled__2026-12-03T03:00:00+00:00"
    with pytest.raises(ValueError, match="failed validation"):
        _launch(connection, tmp_path, Recording, run_id=stopped_run)
    with tfx_metadata.Metadata(connection) as handle:
        stopped = graph.run_graph(handle.store, "taxi", stopped_run)
        assert [(node.node_id, node.state) for node in stopped.nodes] == [
            ("ValidationGate", "failed"),
            ("Transform", "not run"),
        ]
        assert stopped.finished
