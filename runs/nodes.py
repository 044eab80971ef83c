"""One node of one run: its parameters, its input and output artifacts, and for a cached node the run that really
produced its outputs."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ml_metadata.proto import metadata_store_pb2

from runs import contexts, states
from runs.report import error_message


@dataclasses.dataclass(frozen=True)
class ArtifactRef:
    """An artifact as a node's page lists it."""

    id: int
    type_name: str
    uri: str
    properties: dict[str, str]
    produced_in_run: str = ""  # the run whose execution wrote it (for a cached node: an earlier run)
    produced_by: str = ""  # the node that wrote it


@dataclasses.dataclass(frozen=True)
class NodeDetail:
    run_id: str
    node_id: str
    component: str
    state: str
    seconds: float | None
    execution_id: int | None
    parameters: dict[str, str]
    inputs: dict[str, list[ArtifactRef]]
    outputs: dict[str, list[ArtifactRef]]
    error: str = ""

    @property
    def cached_from(self) -> str:
        """For a cached node, the run that produced its outputs."""
        if self.state != states.CACHED:
            return ""
        runs = {a.produced_in_run for artifacts in self.outputs.values() for a in artifacts if a.produced_in_run}
        return sorted(runs)[0] if runs else ""


def node_detail(store: Any, run_id: str, node_id: str, pipeline_name: str | None = None) -> NodeDetail:
    """The node ``node_id`` of run ``run_id``; LookupError when the run has no execution of it.

    ``pipeline_name`` tells an Airflow run apart from another pipeline's run of the same id (``runs.contexts``).
    """
    context = contexts.find_run(store, run_id, pipeline_name)
    if context is None:
        raise LookupError(f"no run {run_id!r}")
    executions = store.get_executions_by_context(context.id)
    node_of = contexts.node_of_executions(store, executions)
    execution = next((e for e in executions if node_of.get(e.id) == node_id), None)
    if execution is None:
        raise LookupError(f"run {run_id} has no execution of {node_id}")
    component = store.get_execution_types_by_id([execution.type_id])[0].name.rsplit(".", 1)[-1]
    events = store.get_events_by_execution_ids([execution.id])
    artifacts = {a.id: a for a in store.get_artifacts_by_id(list({e.artifact_id for e in events}))}
    producers = _producers(store, list(artifacts))
    types = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts.values()}))}
    ports: dict[int, dict[str, list[ArtifactRef]]] = {
        metadata_store_pb2.Event.INPUT: {},
        metadata_store_pb2.Event.OUTPUT: {},
    }
    for event in sorted(events, key=lambda e: (e.type, _port(e), e.artifact_id)):
        if event.type not in ports:
            continue
        artifact = artifacts[event.artifact_id]
        run, node = producers.get(artifact.id, ("", ""))
        ref = ArtifactRef(
            artifact.id, types.get(artifact.type_id, ""), artifact.uri, property_texts(artifact), run, node
        )
        ports[event.type].setdefault(_port(event), []).append(ref)
    seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
    parameters = property_texts(execution)
    if contexts.is_legacy_execution(execution):
        parameters = {key: text for key, text in parameters.items() if key not in contexts.LEGACY_BOOKKEEPING}
    return NodeDetail(
        run_id=run_id,
        node_id=node_id,
        component=component,
        state=states.of_execution(execution),
        seconds=seconds,
        execution_id=execution.id,
        parameters=parameters,
        inputs=ports[metadata_store_pb2.Event.INPUT],
        outputs=ports[metadata_store_pb2.Event.OUTPUT],
        error=error_message(execution),
    )


def run_outputs(store: Any, run_id: str, pipeline_name: str | None = None) -> dict[str, dict[str, ArtifactRef]]:
    """Every node's output artifacts in run ``run_id``, by node id and port (the first artifact of each port).

    A handful of queries for the whole run, whatever its size: for pages that need many nodes' outputs at once
    (the Models page reads every candidate's Trainer and Evaluator and the selector). LookupError for an unknown
    run.
    """
    context = contexts.find_run(store, run_id, pipeline_name)
    if context is None:
        raise LookupError(f"no run {run_id!r}")
    executions = store.get_executions_by_context(context.id)
    node_of = contexts.node_of_executions(store, executions)
    events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
    outputs = [e for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id(list({e.artifact_id for e in outputs}))} if outputs else {}
    types = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts.values()}))}
    result: dict[str, dict[str, ArtifactRef]] = {}
    for event in sorted(outputs, key=lambda e: e.artifact_id):
        artifact = artifacts[event.artifact_id]
        ports = result.setdefault(node_of.get(event.execution_id, ""), {})
        ref = ArtifactRef(artifact.id, types.get(artifact.type_id, ""), artifact.uri, property_texts(artifact))
        ports.setdefault(_port(event), ref)
    return result


def _producers(store: Any, artifact_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Artifact id -> (run id, node id) of the execution that wrote it (not one that reused it from the cache)."""
    if not artifact_ids:
        return {}
    events = store.get_events_by_artifact_ids(artifact_ids)
    outputs = [e for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    executions = {e.id: e for e in store.get_executions_by_id(list({e.execution_id for e in outputs}))}
    writers = [e for e in outputs if states.of_execution(executions[e.execution_id]) != states.CACHED]
    writing = [executions[e.execution_id] for e in writers]
    node_of = contexts.node_of_executions(store, writing)
    run_of = contexts.run_of_executions(store, writing)
    result = {}
    for event in sorted(writers, key=lambda e: e.execution_id):
        if event.artifact_id not in result:
            result[event.artifact_id] = (run_of.get(event.execution_id, ""), node_of.get(event.execution_id, ""))
    return result


def _port(event: metadata_store_pb2.Event) -> str:
    """The input or output key the event was recorded under (``examples``, ``model``, ...)."""
    keys = [step.key for step in event.path.steps if step.HasField("key")]
    return keys[0] if keys else ""


def property_texts(item: Any) -> dict[str, str]:
    """Properties and custom properties as text, without TFX's internal ``__...__`` ones."""
    values = {}
    for source in (item.properties, item.custom_properties):
        for key, value in source.items():
            if key.startswith("__"):
                continue
            kind = value.WhichOneof("value")
            if kind == "proto_value":
                text = str(value.proto_value)
            elif kind == "struct_value":
                text = json.dumps(_struct(value.struct_value))
            else:
                text = str(getattr(value, kind)) if kind else ""
            values[key] = text
    return dict(sorted(values.items()))


def _struct(struct: Any) -> Any:
    from google.protobuf import json_format

    return json_format.MessageToDict(struct)
