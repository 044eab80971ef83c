"""The list of a pipeline's runs, one row each: when, how long, how it ended, which candidate won, what was pushed.

A local run records its row on its ``pipeline_run`` context when it ends (``summary_properties``), so listing
finished runs reads contexts only: one query per page and layout (``runs.contexts``), however many runs there
are, and a state filter is a query on a custom property. A run without that record (in progress, killed, or run
by Airflow) is summarised from its executions and outputs, a few queries for the run, and the summary of a
finished run is kept (of an Airflow run, once it is done: Airflow may retry a failed task).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Mapping
from typing import Any

from ml_metadata.proto import metadata_store_pb2

import tfx_compat
from pipeline import names
from runs import contexts, states
from runs.report import RunReport

# How a run ended, or that it has not: the states the runs list shows and filters by.
RUNNING, DONE, FAILED, STOPPED, INTERRUPTED = "running", "done", "failed", "stopped at the gate", "interrupted"
RUN_STATES = (RUNNING, DONE, FAILED, STOPPED, INTERRUPTED)


@dataclasses.dataclass(frozen=True)
class RunRow:
    """One run as the runs list shows it."""

    run_id: str
    started_ms: int
    seconds: float | None
    state: str
    winner: str = ""
    metric: str = ""
    score: float | None = None
    pushed: str = ""  # the pushed version's folder, if the run pushed one
    not_pushed: str = ""  # why nothing was pushed, when the run ended without a push
    data_root: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class RunPage:
    rows: list[RunRow]
    page: int
    pages: int
    total: int


def run_state(report: RunReport) -> str:
    """How a finished run ended, from its report."""
    failed = {component.node_id for component in report.failed}
    if names.VALIDATION_GATE in failed:
        return STOPPED
    return FAILED if failed else DONE


def summary_properties(report: RunReport, config_json: str, *, interrupted: bool = False) -> dict[str, str]:
    """What a local run records on its context when it ends, for the runs list: its state and its row.

    ``interrupted``: the run was stopped (Ctrl-C, or Stop in the run explorer) rather than failing by itself.
    """
    config = json.loads(config_json)
    metric = config.get("candidates", {}).get("selection_metric", "auc")
    winner = report.candidates.get(report.selected or "")
    row = RunRow(
        run_id=report.run_id,
        started_ms=0,  # the context's own create time says it
        seconds=None,  # ...and its last update time this
        state=INTERRUPTED if interrupted else run_state(report),
        winner=report.selected or "",
        metric=metric,
        score=winner.metrics.get(metric) if winner else None,
        pushed=report.pushed_path,
        not_pushed=_why_not_pushed(
            INTERRUPTED if interrupted else run_state(report), report.blessed, report.failed_names()
        ),
        data_root=config.get("data", {}).get("root", ""),
    )
    return {names.RUN_STATE: row.state, names.RUN_ROW: row.to_json()}


def _why_not_pushed(state: str, blessed: bool | None, failed: list[str]) -> str:
    if state == INTERRUPTED:
        return "the run was stopped"
    if state == STOPPED:
        return "the data failed validation"
    if state == FAILED:
        return f"{', '.join(failed)} failed"
    if blessed is False:
        return "no candidate was blessed"
    return ""


class RunCatalog:
    """The runs of one pipeline in one store; summaries of finished runs that had to be computed are kept."""

    def __init__(self, store: Any, pipeline_name: str):
        self._store = store
        self._pipeline_name = pipeline_name
        self._computed: dict[int, RunRow] = {}
        self._lock = threading.Lock()

    def page(self, page: int = 1, per_page: int = 25, state: str | None = None, active_run: str = "") -> RunPage:
        """One page of runs, newest first; ``state`` keeps only runs in that state. ``active_run`` is the id of the
        run holding the home's lock, if any (``runs.active``): a run without a record is running only if it is
        that one, else it was interrupted."""
        contexts = self._contexts(state, active_run)
        pages = max(1, math.ceil(len(contexts) / per_page))
        page = min(max(page, 1), pages)
        chosen = contexts[(page - 1) * per_page : page * per_page]
        return RunPage([self.row(context, active_run) for context in chosen], page, pages, len(contexts))

    def row(self, context: metadata_store_pb2.Context, active_run: str = "") -> RunRow:
        """The run's row: its own record if it has one, else summarised from its executions."""
        recorded = context.custom_properties.get(names.RUN_ROW)
        if recorded is not None:
            values = json.loads(recorded.string_value)
            values.update(started_ms=context.create_time_since_epoch, run_id=contexts.run_id_of(context))
            values["seconds"] = (context.last_update_time_since_epoch - context.create_time_since_epoch) / 1000
            return RunRow(**values)
        with self._lock:
            if context.id in self._computed:
                return self._computed[context.id]
        row = self._summarise(context, running=contexts.run_id_of(context) == active_run)
        # A local run that ended stays as it ended; Airflow may retry a failed task of its runs and finish them.
        if row.state != RUNNING and (row.state == DONE or not contexts.is_legacy(context)):
            with self._lock:
                self._computed[context.id] = row
        return row

    def _contexts(self, state: str | None, active_run: str) -> list[metadata_store_pb2.Context]:
        if state in (DONE, FAILED, STOPPED, INTERRUPTED):
            condition = f"custom_properties.{names.RUN_STATE}.string_value = {contexts.quoted(state)}"
            recorded = contexts.list_runs(self._store, self._pipeline_name, condition)
            everything = contexts.list_runs(self._store, self._pipeline_name)
            unrecorded = [c for c in everything if names.RUN_STATE not in c.custom_properties]
            matching = recorded + [c for c in unrecorded if self.row(c, active_run).state == state]
            return sorted(matching, key=lambda c: (c.create_time_since_epoch, c.id), reverse=True)
        found = contexts.list_runs(self._store, self._pipeline_name)
        if state == RUNNING:
            found = [c for c in found if names.RUN_STATE not in c.custom_properties]
            found = [c for c in found if self.row(c, active_run).state == state]
        return found

    def _summarise(self, context: metadata_store_pb2.Context, running: bool) -> RunRow:
        """A run's row from ML Metadata alone: its executions' states, the selector's blessing, the push."""
        executions = self._store.get_executions_by_context(context.id)
        types = {t.id: t.name for t in self._store.get_execution_types()}
        kinds = [types.get(e.type_id, "").rsplit(".", 1)[-1] for e in executions]
        kind_states = list(zip(kinds, map(states.of_execution, executions), strict=True))
        by_kind = dict(zip(kinds, executions, strict=True))
        failed = [kind for kind, state in kind_states if state == states.FAILED]
        if contexts.is_legacy(context):
            running = states.scheduled_run_going(kind_states)
        if running:
            state = RUNNING
        elif "ValidationGate" in failed:
            state = STOPPED
        elif failed:
            state = FAILED
        elif states.pushed(kind_states):
            state = DONE
        else:
            state = INTERRUPTED
        outputs = self._outputs([e.id for k, e in by_kind.items() if k in ("ModelSelector", "Pusher")])
        winner, metric, score, blessed = _selection(outputs.get("ModelBlessing"))
        pushed = outputs.get("PushedModel")
        pushed_path = ""
        if pushed is not None and pushed.custom_properties[tfx_compat.PUSHED_PROPERTY].int_value:
            pushed_path = pushed.custom_properties[tfx_compat.PUSHED_DESTINATION_PROPERTY].string_value
        config = json.loads(_string(context.custom_properties, names.RUN_CONFIG) or "{}")
        last = max((e.last_update_time_since_epoch for e in executions), default=context.create_time_since_epoch)
        return RunRow(
            run_id=contexts.run_id_of(context),
            started_ms=context.create_time_since_epoch,
            seconds=(last - context.create_time_since_epoch) / 1000,
            state=state,
            winner=winner,
            metric=metric,
            score=score,
            pushed=pushed_path,
            not_pushed=_why_not_pushed(state, blessed, failed) if not pushed_path and state != RUNNING else "",
            data_root=config.get("data", {}).get("root", ""),
        )

    def _outputs(self, execution_ids: list[int]) -> dict[str, metadata_store_pb2.Artifact]:
        """The output artifacts of these executions, by type name."""
        if not execution_ids:
            return {}
        events = self._store.get_events_by_execution_ids(execution_ids)
        ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
        artifacts = self._store.get_artifacts_by_id(ids) if ids else []
        types = {t.id: t.name for t in self._store.get_artifact_types()}
        return {types.get(a.type_id, ""): a for a in artifacts}


def _selection(blessing: metadata_store_pb2.Artifact | None) -> tuple[str, str, float | None, bool | None]:
    """The winner, the selection metric, the winner's score and whether any candidate was blessed."""
    if blessing is None:
        return "", "", None, None
    props = blessing.custom_properties
    winner = _string(props, names.SELECTION_WINNER)
    scores = json.loads(_string(props, names.SELECTION_SCORES) or "[]")
    score = next((s.get("score") for s in scores if s.get("name") == winner), None)
    blessed = bool(props[names.BLESSED].int_value) if names.BLESSED in props else None
    return winner, _string(props, names.SELECTION_METRIC), score, blessed


def _string(properties: Mapping[str, metadata_store_pb2.Value], key: str) -> str:
    value = properties.get(key)
    return value.string_value if value is not None else ""
