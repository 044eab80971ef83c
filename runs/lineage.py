"""Where an artifact came from and what used it, as a graph of artifacts and the executions between them.

Upstream from a pushed model: the Pusher, the ModelSelector, the Trainer and Evaluator of the winner, Transform,
the examples, and at the end the CSV files ExampleGen read. Downstream from any artifact: the executions that
read it and what they wrote. Executions served from the cache are left out: they reused outputs, they neither
made nor consumed anything new, and in a store of many runs every cached run would otherwise hang off the graph.
The walk follows events one hop at a time (a few queries per hop) and stops at ``MAX_NODES``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from ml_metadata.proto import metadata_store_pb2

from runs import contexts, states

UPSTREAM, DOWNSTREAM = "upstream", "downstream"
MAX_NODES = 150


@dataclasses.dataclass(frozen=True)
class LineageNode:
    key: str  # "a12" (artifact 12), "e7" (execution 7) or "files"
    kind: str  # "artifact", "execution" or "files"
    label: str
    detail: str  # an artifact's type and uri, an execution's run, the files' folder
    artifact_id: int | None = None
    run_id: str = ""
    node_id: str = ""
    state: str = ""
    files: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Lineage:
    focus: str  # the key of the artifact asked about
    nodes: list[LineageNode]
    edges: list[tuple[str, str]]  # data flow: artifact -> execution that read it, execution -> artifact it wrote
    truncated: bool


def lineage(store: Any, artifact_id: int, direction: str = UPSTREAM) -> Lineage:
    """The graph around artifact ``artifact_id``, walking ``direction`` (UPSTREAM or DOWNSTREAM).

    Raises LookupError for an unknown artifact.
    """
    found = store.get_artifacts_by_id([artifact_id])
    if not found:
        raise LookupError(f"no artifact {artifact_id}")
    walk = _Walk(store)
    walk.add_artifacts(found)
    frontier_artifacts, frontier_executions = {artifact_id}, set()
    while (frontier_artifacts or frontier_executions) and len(walk.nodes) < MAX_NODES:
        frontier_executions = walk.step_from_artifacts(frontier_artifacts, direction)
        frontier_artifacts = walk.step_from_executions(frontier_executions, direction)
    if direction == UPSTREAM:
        walk.add_input_files()
    return Lineage(f"a{artifact_id}", list(walk.nodes.values()), sorted(walk.edges), len(walk.nodes) >= MAX_NODES)


class _Walk:
    """The graph collected so far, and one hop at a time along events."""

    def __init__(self, store: Any):
        self.store = store
        self.nodes: dict[str, LineageNode] = {}
        self.edges: set[tuple[str, str]] = set()
        self._artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self._execution_types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
        self._executions: dict[int, metadata_store_pb2.Execution] = {}

    def add_artifacts(self, artifacts: Iterable[metadata_store_pb2.Artifact]) -> None:
        for artifact in artifacts:
            type_name = self._artifact_types.get(artifact.type_id, "")
            self.nodes.setdefault(
                f"a{artifact.id}",
                LineageNode(f"a{artifact.id}", "artifact", f"{type_name} #{artifact.id}", artifact.uri, artifact.id),
            )

    def step_from_artifacts(self, artifact_ids: set[int], direction: str) -> set[int]:
        """Executions that wrote (upstream) or read (downstream) these artifacts, cached ones left out."""
        if not artifact_ids:
            return set()
        wanted = metadata_store_pb2.Event.OUTPUT if direction == UPSTREAM else metadata_store_pb2.Event.INPUT
        events = [e for e in self.store.get_events_by_artifact_ids(list(artifact_ids)) if e.type == wanted]
        executions = self._load_executions({e.execution_id for e in events})
        new = set()
        for event in events:
            if event.execution_id not in executions:
                continue
            edge = (f"e{event.execution_id}", f"a{event.artifact_id}")
            self.edges.add(edge if direction == UPSTREAM else edge[::-1])
            if f"e{event.execution_id}" not in self.nodes:
                new.add(event.execution_id)
        self._add_executions([executions[i] for i in new])
        return new

    def step_from_executions(self, execution_ids: set[int], direction: str) -> set[int]:
        """Artifacts these executions read (upstream) or wrote (downstream)."""
        if not execution_ids:
            return set()
        wanted = metadata_store_pb2.Event.INPUT if direction == UPSTREAM else metadata_store_pb2.Event.OUTPUT
        events = [e for e in self.store.get_events_by_execution_ids(list(execution_ids)) if e.type == wanted]
        new = {e.artifact_id for e in events if f"a{e.artifact_id}" not in self.nodes}
        self.add_artifacts(self.store.get_artifacts_by_id(list(new)) if new else [])
        for event in events:
            edge = (f"a{event.artifact_id}", f"e{event.execution_id}")
            self.edges.add(edge if direction == UPSTREAM else edge[::-1])
        return new

    def add_input_files(self) -> None:
        """The CSV files behind each ExampleGen in the graph: its ``input_base`` and the files there now."""
        from pathlib import Path

        for execution in list(self._executions.values()):
            # An execution property: a custom property in the IR-based layout, a typed one in Airflow's.
            base = execution.custom_properties.get("input_base") or execution.properties.get("input_base")
            if base is None or not self._execution_types.get(execution.type_id, "").endswith("ExampleGen"):
                continue
            folder = Path(base.string_value)
            files = tuple(sorted(p.name for p in folder.glob("*") if p.is_file())) if folder.is_dir() else ()
            key = f"files{execution.id}"
            self.nodes[key] = LineageNode(key, "files", "input files", str(folder), files=files)
            self.edges.add((key, f"e{execution.id}"))

    def _load_executions(self, ids: set[int]) -> dict[int, metadata_store_pb2.Execution]:
        missing = [i for i in ids if i not in self._executions]
        for execution in self.store.get_executions_by_id(missing) if missing else []:
            self._executions[execution.id] = execution
        return {i: self._executions[i] for i in ids if states.of_execution(self._executions[i]) != states.CACHED}

    def _add_executions(self, executions: list[metadata_store_pb2.Execution]) -> None:
        if not executions:
            return
        node_of = contexts.node_of_executions(self.store, executions)
        run_of = contexts.run_of_executions(self.store, executions)
        for execution in executions:
            node_id = node_of.get(execution.id, self._execution_types.get(execution.type_id, ""))
            run_id = run_of.get(execution.id, "")
            self.nodes[f"e{execution.id}"] = LineageNode(
                f"e{execution.id}",
                "execution",
                node_id,
                f"run {run_id}" if run_id else "",
                run_id=run_id,
                node_id=node_id,
                state=states.of_execution(execution),
            )
