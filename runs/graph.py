"""One run as a graph: its nodes with their state and time, and which node waits for which.

ML Metadata does not store a run's DAG. A local run records its nodes and their upstream nodes on its context
when it ends, and the home's run lock says them while it runs (``runs.active``); an Airflow run records them on
its context at its first task (``tfx_compat.airflow_metadata``); for any other run (Vertex, or an Airflow run
recorded before that) the edges are rebuilt from events: a node that read an artifact another node of the run
wrote waits for that node. States come from the run's executions, so a running run's graph is as fresh as ML Metadata.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from ml_metadata.proto import metadata_store_pb2

from pipeline import names
from runs import contexts, states
from runs.active import ActiveRun
from runs.report import ComponentRecord, read_components


@dataclasses.dataclass(frozen=True)
class GraphNode:
    node_id: str
    state: str
    seconds: float | None
    execution_id: int | None
    component: str  # the component's class, e.g. "Trainer"


@dataclasses.dataclass(frozen=True)
class RunGraph:
    run_id: str
    nodes: list[GraphNode]
    edges: list[tuple[str, str]]  # (upstream, downstream)
    created_ms: int  # when ML Metadata first saw the run; 0 if it has not yet
    config_json: str
    log_path: str

    def node(self, node_id: str) -> GraphNode | None:
        return next((node for node in self.nodes if node.node_id == node_id), None)

    @property
    def essential_edges(self) -> list[tuple[str, str]]:
        """The edges no longer path already implies (the transitive reduction): Transform waits for CsvExampleGen,
        but also for the gate, which waits for it already; drawing only these keeps a wide pipeline readable."""
        downstream: dict[str, set[str]] = {}
        for up, down in self.edges:
            downstream.setdefault(up, set()).add(down)

        def reachable_without(start: str, skip: str) -> set[str]:
            seen, todo = set(), [n for n in downstream.get(start, ()) if n != skip]
            while todo:
                node = todo.pop()
                if node not in seen:
                    seen.add(node)
                    todo += downstream.get(node, ())
            return seen

        return [(up, down) for up, down in self.edges if down not in reachable_without(up, down)]

    @property
    def finished(self) -> bool:
        return not any(node.state in (states.RUNNING, states.WAITING) for node in self.nodes)


def run_graph(store: Any, pipeline_name: str, run_id: str, active_run: ActiveRun | None = None) -> RunGraph:
    """The run's graph; nodes not reached yet are "waiting" while the run is in progress, else "not run".

    Raises LookupError for a run neither ML Metadata nor the home's lock knows.
    """
    context = contexts.find_run(store, run_id, pipeline_name)
    live = active_run is not None and active_run.run_id == run_id
    if context is None and not live:
        raise LookupError(f"no run {run_id!r}")
    properties = context.custom_properties if context is not None else {}
    recorded = properties.get(names.RUN_DAG)
    if recorded is not None:
        dag = [(node, tuple(upstream)) for node, upstream in json.loads(recorded.string_value)]
    elif live:
        dag = list(active_run.nodes)
    else:
        dag = []
    components = read_components(store, pipeline_name, run_id, [node for node, _ in dag]) if context else []
    if context is None:
        components = [ComponentRecord(node, states.NOT_RUN) for node, _ in dag]
    if not dag:
        dag = _dag_from_events(store, components)
    kinds = _component_kinds(store, components)
    going = live or (
        context is not None
        and contexts.is_legacy(context)
        and states.scheduled_run_going((kinds.get(c.node_id, ""), c.state) for c in components)
    )
    nodes = []
    for component in components:
        state = component.state
        if going and state == states.NOT_RUN:
            state = states.WAITING
        kind = kinds.get(component.node_id, "")
        nodes.append(GraphNode(component.node_id, state, component.seconds, component.execution_id, kind))
    known = {node.node_id for node in nodes}
    edges = [(up, node) for node, upstream in dag for up in upstream if up in known and node in known]
    return RunGraph(
        run_id=run_id,
        nodes=nodes,
        edges=edges,
        created_ms=context.create_time_since_epoch if context else 0,
        config_json=_string(properties, names.RUN_CONFIG) or (active_run.config_json if live else ""),
        log_path=_string(properties, names.RUN_LOG) or (active_run.log_path if live else ""),
    )


def _component_kinds(store: Any, components: Sequence[ComponentRecord]) -> dict[str, str]:
    """Node id -> the short name of its component class, from its execution's type."""
    ids = [c.execution_id for c in components if c.execution_id is not None]
    if not ids:
        return {}
    executions = store.get_executions_by_id(ids)
    type_ids = list({e.type_id for e in executions})
    types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types_by_id(type_ids)}
    by_execution = {c.execution_id: c.node_id for c in components}
    return {by_execution[e.id]: types.get(e.type_id, "") for e in executions}


def _dag_from_events(store: Any, components: Sequence[ComponentRecord]) -> list[tuple[str, tuple[str, ...]]]:
    """Upstream nodes rebuilt from the run's own events: who wrote what the node read."""
    ids = [c.execution_id for c in components if c.execution_id is not None]
    node_of = {c.execution_id: c.node_id for c in components}
    events = store.get_events_by_execution_ids(ids) if ids else []
    writer = {e.artifact_id: node_of[e.execution_id] for e in events if e.type == metadata_store_pb2.Event.OUTPUT}
    upstream: dict[str, set[str]] = {c.node_id: set() for c in components}
    for event in events:
        if event.type == metadata_store_pb2.Event.INPUT and event.artifact_id in writer:
            source, target = writer[event.artifact_id], node_of[event.execution_id]
            if source != target:
                upstream[target].add(source)
    return [(node, tuple(sorted(ups))) for node, ups in upstream.items()]


def _string(properties: Any, key: str) -> str:
    value = properties.get(key)
    return value.string_value if value is not None else ""
