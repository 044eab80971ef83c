"""Runs recorded by TFX's Airflow orchestrator, read back by the reading layer the run explorer uses.

The store is written by TFX's real legacy ML Metadata handle (``tfx.orchestration.metadata.Metadata``, what
Airflow's component launcher records through) on a real SQLite file, component by component as the legacy driver
and publisher do: contexts, the execution with its inputs, the outputs, then the published execution. A whole
scheduled run under Airflow, read the same way, is in ``tests/e2e/test_composer.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

import tfx_compat

tfx_compat.prepare_tensorflow()
from tfx.orchestration import data_types  # noqa: E402
from tfx.orchestration import metadata as tfx_metadata  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from runs import contexts, lineage, report  # noqa: E402
from runs.catalog import DONE, RUNNING, RunCatalog  # noqa: E402
from runs.graph import run_graph  # noqa: E402
from runs.nodes import node_detail  # noqa: E402

FIRST, SECOND = "scheduled__2026-12-01T03:00:00+00:00", "scheduled__2026-12-02T03:00:00+00:00"
KINDS = {
    "CsvExampleGen": "tfx.components.example_gen.csv_example_gen.component.CsvExampleGen",
    "Trainer_linear": "tfx.components.trainer.component.Trainer",
    "Pusher": "tfx.components.pusher.component.Pusher",
}


def _component(
    handle: tfx_metadata.Metadata,
    pipeline: data_types.PipelineInfo,
    component_id: str,
    inputs: dict[str, list[Any]],
    outputs: dict[str, list[Any]],
    *,
    finished: bool = True,
) -> dict[str, list[Any]]:
    """One component as the legacy launcher records it: registered (state "new") with its inputs, its outputs
    prepared, then published; an unfinished one stops after registering, as a task that failed under Airflow."""
    component = data_types.ComponentInfo(KINDS[component_id], component_id, pipeline)
    run_contexts = handle.register_pipeline_contexts_if_not_exists(pipeline)
    execution = handle.register_execution(pipeline, component, run_contexts, {"train_steps": 300}, inputs)
    for key, artifacts in outputs.items():
        for artifact in artifacts:
            artifact.name = f"{pipeline.pipeline_name}:{component_id}:{key}:{pipeline.run_id}"
            artifact.uri = f"/tmp/root/{component_id}/{key}/{execution.id}"
    handle.update_execution(execution, component, output_artifacts=outputs, contexts=run_contexts)
    if finished:
        handle.publish_execution(component, outputs, {"train_steps": 300})
    return outputs


def _run(handle: tfx_metadata.Metadata, pipeline_name: str, run_id: str, *, pushes: bool) -> None:
    pipeline = data_types.PipelineInfo(pipeline_name, "/tmp/root", run_id=run_id)
    examples = _component(handle, pipeline, "CsvExampleGen", {}, {"examples": [standard_artifacts.Examples()]})
    if pipeline_name != "taxi":
        return
    model = _component(
        handle, pipeline, "Trainer_linear", examples, {"model": [standard_artifacts.Model()]}, finished=pushes
    )
    if pushes:
        pushed = standard_artifacts.PushedModel()
        pushed.set_int_custom_property(tfx_compat.PUSHED_PROPERTY, 1)
        pushed.set_string_custom_property(tfx_compat.PUSHED_DESTINATION_PROPERTY, "/serving/taxi/7")
        _component(handle, pipeline, "Pusher", model, {"pushed_model": [pushed]})


@pytest.fixture
def store(tmp_path) -> Any:
    """Two scheduled runs of the taxi pipeline (the second's Trainer never finished) and a run of another
    pipeline in the same store with the first run's id (Airflow's run ids are dates)."""
    connection = tfx_metadata.sqlite_metadata_connection_config(str(tmp_path / "metadata.sqlite"))
    with tfx_metadata.Metadata(connection) as handle:
        _run(handle, "taxi", FIRST, pushes=True)
        _run(handle, "other", FIRST, pushes=False)
        _run(handle, "taxi", SECOND, pushes=False)
        yield handle.store


def test_the_runs_of_one_pipeline_are_listed_oldest_first(store):
    assert report.run_ids(store, "taxi") == [FIRST, SECOND]
    assert report.run_ids(store, "other") == [FIRST]
    taxi, other = contexts.find_run(store, FIRST, "taxi"), contexts.find_run(store, FIRST, "other")
    assert taxi.id != other.id and contexts.run_id_of(taxi) == contexts.run_id_of(other) == FIRST
    assert contexts.find_run(store, SECOND).id == contexts.find_run(store, SECOND, "taxi").id
    assert contexts.find_run(store, "scheduled__1999-01-01T00:00:00+00:00", "taxi") is None


def test_each_component_of_a_run_with_its_state(store):
    first = report.read_run(store, "taxi", run_id=FIRST)
    assert [(c.node_id, c.state) for c in first.components] == [
        ("CsvExampleGen", "done"),
        ("Trainer_linear", "done"),
        ("Pusher", "done"),
    ]
    assert first.pushed_path == "/serving/taxi/7"
    # A task that failed (or still runs) under Airflow: the legacy launcher left its execution "new".
    second = report.read_components(store, "taxi", SECOND)
    assert [(c.node_id, c.state) for c in second] == [("CsvExampleGen", "done"), ("Trainer_linear", "running")]


def test_the_runs_list_and_its_state_filter(store):
    catalog = RunCatalog(store, "taxi")
    rows = catalog.page().rows
    assert [(row.run_id, row.state, row.pushed) for row in rows] == [
        (SECOND, RUNNING, ""),
        (FIRST, DONE, "/serving/taxi/7"),
    ]
    assert [row.run_id for row in catalog.page(state=DONE).rows] == [FIRST]
    assert [row.run_id for row in catalog.page(state=RUNNING).rows] == [SECOND]


def test_a_node_page_shows_parameters_inputs_and_their_producer(store):
    detail = node_detail(store, FIRST, "Trainer_linear", "taxi")
    assert detail.component == "Trainer" and detail.state == "done"
    assert detail.parameters == {"train_steps": "300"}  # the launcher's bookkeeping (run_id, state...) left out
    [examples] = detail.inputs["examples"]
    assert (examples.produced_by, examples.produced_in_run) == ("CsvExampleGen", FIRST)
    with pytest.raises(LookupError):
        node_detail(store, FIRST, "Trainer_linear", "other")


def test_the_graph_and_the_lineage_come_from_the_runs_events(store):
    graph = run_graph(store, "taxi", FIRST)
    assert [node.node_id for node in graph.nodes] == ["CsvExampleGen", "Trainer_linear", "Pusher"]
    assert sorted(graph.edges) == [("CsvExampleGen", "Trainer_linear"), ("Trainer_linear", "Pusher")]
    [pushed] = store.get_artifacts_by_type("PushedModel")
    executions = [node for node in lineage.lineage(store, pushed.id).nodes if node.kind == "execution"]
    assert {(node.node_id, node.run_id) for node in executions} == {
        ("Pusher", FIRST),
        ("Trainer_linear", FIRST),
        ("CsvExampleGen", FIRST),
    }
