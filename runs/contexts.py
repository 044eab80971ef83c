"""Where a run lives in ML Metadata: the two layouts TFX 1.16 writes, read through one set of functions.

Why two: TFX's orchestrators do not record runs alike.

- **The IR-based orchestrators** (``LocalDagRunner``, and Kubeflow's launcher on a cluster's own MLMD) put a
  ``pipeline_run`` context named by the run id under the ``pipeline`` context (a parent link), and each execution
  in a ``node`` context named ``<pipeline>.<node id>``.
- **The Airflow orchestrator** (``AirflowDagRunner``, so Cloud Composer) runs components through TFX's legacy
  launcher (``tfx.orchestration.metadata``): a ``run`` context named ``<pipeline>.<run id>`` with the
  properties ``pipeline_name`` and ``run_id`` and no parent link, a ``component_run`` context per component,
  and the component id, run id and pipeline name as properties of each execution. A run id is Airflow's
  (``scheduled__2026-12-01T03:00:00+00:00``). The legacy launcher records no failure (a failed task's execution
  stays ``new``, RUNNING); the DAG's launcher, ``tfx_compat.airflow_metadata.AirflowLauncher``, marks it FAILED.

Every page of the run explorer, the summary and ``bench/`` find runs, their executions' nodes and an execution's
run through here, so a store written by either (or both: a local run and a scheduled one sharing a MySQL store)
reads the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

PIPELINE = "pipeline"
RUN = "pipeline_run"  # the IR-based orchestrators' run context
NODE = "node"
LEGACY_RUN = "run"  # the legacy launcher's (Airflow's) run context
LEGACY_RUN_ID = "run_id"  # property of a legacy run context and of a legacy execution
LEGACY_PIPELINE_NAME = "pipeline_name"
LEGACY_COMPONENT_ID = "component_id"  # property of a legacy execution
# The legacy launcher's own bookkeeping among a legacy execution's properties (the rest are the component's
# execution properties, its parameters).
LEGACY_BOOKKEEPING = frozenset({LEGACY_COMPONENT_ID, LEGACY_PIPELINE_NAME, LEGACY_RUN_ID, "pipeline_root", "state"})


def quoted(text: str) -> str:
    """A string literal of ML Metadata's filter language."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_legacy(context: metadata_store_pb2.Context) -> bool:
    """Whether a run context is the legacy launcher's (it alone has a ``run_id`` property)."""
    return LEGACY_RUN_ID in context.properties


def is_legacy_execution(execution: metadata_store_pb2.Execution) -> bool:
    """Whether the legacy launcher (Airflow's) recorded this execution."""
    return LEGACY_COMPONENT_ID in execution.properties


def run_id_of(context: metadata_store_pb2.Context) -> str:
    """The run id a run context stands for: an IR run context's name, a legacy one's ``run_id`` property."""
    return context.properties[LEGACY_RUN_ID].string_value if is_legacy(context) else context.name


def find_run(store: Any, run_id: str, pipeline_name: str | None = None) -> metadata_store_pb2.Context | None:
    """The context of run ``run_id`` in either layout, or None.

    ``pipeline_name`` names the legacy context exactly; without it, a legacy run is found by its ``run_id``
    property, and where two pipelines in one store have runs of that id (Airflow's ids are dates), the oldest.
    """
    context = store.get_context_by_type_and_name(RUN, run_id)
    if context is not None:
        return context
    if pipeline_name is not None:
        return store.get_context_by_type_and_name(LEGACY_RUN, f"{pipeline_name}.{run_id}")
    found = _list(store, f"type = '{LEGACY_RUN}' AND properties.{LEGACY_RUN_ID}.string_value = {quoted(run_id)}")
    return found[-1] if found else None


def list_runs(
    store: Any, pipeline_name: str, condition: str = "", limit: int | None = None
) -> list[metadata_store_pb2.Context]:
    """The pipeline's run contexts of both layouts, newest first (one query per layout).

    Args:
        store: an open ML Metadata store.
        pipeline_name: the pipeline's name.
        condition: a filter-language clause that narrows both queries (a custom property, the create time).
        limit: at most this many, the newest.
    """
    extra = f" AND {condition}" if condition else ""
    ir_runs = _list(store, f"type = '{RUN}' AND parent_contexts_a.name = {quoted(pipeline_name)}{extra}", limit)
    legacy_runs = _list(
        store,
        f"type = '{LEGACY_RUN}' AND properties.{LEGACY_PIPELINE_NAME}.string_value = {quoted(pipeline_name)}{extra}",
        limit,
    )
    runs = sorted(ir_runs + legacy_runs, key=lambda c: (c.create_time_since_epoch, c.id), reverse=True)
    return runs[:limit] if limit is not None else runs


def _list(store: Any, query: str, limit: int | None = None) -> list[metadata_store_pb2.Context]:
    """Contexts matching ``query``, newest first (one query)."""
    options = metadata_store.ListOptions(
        filter_query=query, order_by=metadata_store.OrderByField.CREATE_TIME, is_asc=False, limit=limit
    )
    return store.get_contexts(list_options=options)


def node_of_executions(store: Any, executions: Sequence[metadata_store_pb2.Execution]) -> dict[int, str]:
    """Execution id -> node id: a legacy execution's ``component_id`` property, else its ``node`` context's name
    (``<pipeline>.<node id>``). One small query per IR execution: the cost follows the run's size, not the
    store's."""
    return _per_execution(store, executions, LEGACY_COMPONENT_ID, NODE, lambda name: name.split(".", 1)[-1])


def run_of_executions(store: Any, executions: Sequence[metadata_store_pb2.Execution]) -> dict[int, str]:
    """Execution id -> the id of the run it belongs to (its own run, not the one whose outputs a cached
    execution reused); executions in no run are left out."""
    return _per_execution(store, executions, LEGACY_RUN_ID, RUN, lambda name: name)


def _per_execution(
    store: Any,
    executions: Sequence[metadata_store_pb2.Execution],
    legacy_property: str,
    context_type: str,
    from_context_name: Callable[[str], str],
) -> dict[int, str]:
    """Execution id -> a legacy execution's ``legacy_property``, or what ``from_context_name`` makes of the name
    of an IR execution's context of ``context_type``."""
    result = {}
    type_id = None
    for execution in executions:
        if is_legacy_execution(execution):
            result[execution.id] = execution.properties[legacy_property].string_value
            continue
        if type_id is None:
            type_id = _type_id(store, context_type)
        for context in store.get_contexts_by_execution(execution.id):
            if context.type_id == type_id:
                result[execution.id] = from_context_name(context.name)
                break
    return result


def _type_id(store: Any, name: str) -> int:
    """A context type's id; -1 (matching no context) when the store has no such type (an Airflow-only store has
    no ``node`` or ``pipeline_run`` type)."""
    try:
        return store.get_context_type(name).id
    except errors.NotFoundError:
        return -1
