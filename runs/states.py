"""The states a component can be in, named once for the progress display, the summary, the reports and the UI.

``done``, ``cached``, ``failed``, ``running`` come from ML Metadata's execution states; ``waiting`` and
``not run`` are what a node without an execution in the run is (before and after the run ends).
"""

from __future__ import annotations

from collections.abc import Iterable

from ml_metadata.proto import metadata_store_pb2

WAITING = "waiting"
RUNNING = "running"
CACHED = "cached"
DONE = "done"
FAILED = "failed"
NOT_RUN = "not run"
NEW = "new"
CANCELED = "canceled"
UNKNOWN = "unknown"

_FROM_MLMD = {
    metadata_store_pb2.Execution.COMPLETE: DONE,
    metadata_store_pb2.Execution.CACHED: CACHED,
    metadata_store_pb2.Execution.FAILED: FAILED,
    metadata_store_pb2.Execution.RUNNING: RUNNING,
    metadata_store_pb2.Execution.NEW: NEW,
    metadata_store_pb2.Execution.CANCELED: CANCELED,
}


def of_execution(execution: metadata_store_pb2.Execution) -> str:
    """The state name of an ML Metadata execution."""
    return _FROM_MLMD.get(execution.last_known_state, UNKNOWN)


def scheduled_run_going(kind_states: Iterable[tuple[str, str]]) -> bool:
    """Whether a run recorded by TFX's legacy launcher (Airflow's, which holds no lock here) has tasks still to
    run, from its components' (component class name, state) pairs: one that neither pushed nor recorded a failure.
    It may also have lost a worker for good: Airflow's own UI tells which; ``tfx_compat.airflow_metadata`` records
    the failures that raise. The runs list and the run's graph both read it so."""
    kind_states = list(kind_states)
    return not any(state == FAILED for _, state in kind_states) and not pushed(kind_states)


def pushed(kind_states: Iterable[tuple[str, str]]) -> bool:
    """Whether a run's Pusher ran to the end (done, or cached), from its (component class name, state) pairs."""
    return any(kind == "Pusher" and state in (DONE, CACHED) for kind, state in kind_states)
