"""What happened in a run, read back from ML Metadata: each component's outcome and time, each candidate's
evaluation and blessing, the model selector's decision and the pushed model. The end-of-run summary and the tests
both read runs through this module, so what users are shown is what MLMD recorded.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

import tfx_compat
from pipeline import names
from pipeline.components import anomalies, evaluation_results
from runs import contexts, states


@dataclasses.dataclass
class ComponentRecord:
    node_id: str
    state: str  # one of runs.states: done, cached, failed, ..., or "not run" without an execution in this run
    seconds: float | None = None
    error: str = ""
    execution_id: int | None = None


@dataclasses.dataclass
class CandidateRecord:
    """One candidate model's evaluation in this run (its ``Evaluator_<name>``'s outputs)."""

    name: str
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    baseline_metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # the previous pushed model's
    slice_metrics: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    blessed: bool | None = None


@dataclasses.dataclass
class RunReport:
    pipeline_name: str
    run_id: str
    components: list[ComponentRecord]
    candidates: dict[str, CandidateRecord] = dataclasses.field(default_factory=dict)
    # The model selector's decision: whether any candidate was blessed, which one won, and its stated reason.
    blessed: bool | None = None
    selected: str | None = None
    selection_reason: str = ""
    pushed_path: str = ""
    anomalies: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> list[ComponentRecord]:
        return [component for component in self.components if component.state == states.FAILED]

    def failed_names(self) -> list[str]:
        return [component.node_id for component in self.failed]

    @property
    def baseline_metrics(self) -> dict[str, float]:
        """The previously pushed model's metrics: every candidate's Evaluator measured the same baseline."""
        return next((c.baseline_metrics for c in self.candidates.values() if c.baseline_metrics), {})

    def component(self, node_id: str) -> ComponentRecord:
        return next(component for component in self.components if component.node_id == node_id)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def latest_run_id(store: metadata_store.MetadataStore, pipeline_name: str) -> str | None:
    """The pipeline's newest run, or None if it never ran."""
    runs = run_ids(store, pipeline_name)
    return runs[-1] if runs else None


def error_message(execution: metadata_store_pb2.Execution) -> str:
    """TFX stores a failed execution's result as a serialized ExecutionResult text in a custom property."""
    result = execution.custom_properties.get(tfx_compat.EXECUTION_RESULT_PROPERTY)
    if result is None:
        return ""
    text = result.string_value
    try:
        return json.loads(text).get("resultMessage", text)
    except ValueError:
        return text


def _outputs(store: metadata_store.MetadataStore, execution_id: int) -> list[metadata_store_pb2.Artifact]:
    events = [
        event
        for event in store.get_events_by_execution_ids([execution_id])
        if event.type == metadata_store_pb2.Event.OUTPUT
    ]
    return store.get_artifacts_by_id([event.artifact_id for event in events]) if events else []


def _artifact_type_name(store: metadata_store.MetadataStore, artifact: metadata_store_pb2.Artifact) -> str:
    return store.get_artifact_types_by_id([artifact.type_id])[0].name


def run_ids(store: metadata_store.MetadataStore, pipeline_name: str) -> list[str]:
    """The pipeline's runs, oldest first, whichever orchestrator recorded them (``runs.contexts``)."""
    return [contexts.run_id_of(context) for context in reversed(contexts.list_runs(store, pipeline_name))]


def read_components(
    store: metadata_store.MetadataStore, pipeline_name: str, run_id: str, node_ids: Sequence[str] = ()
) -> list[ComponentRecord]:
    """Each component of the run ``run_id``: its state, seconds, error and execution, in execution order.

    ``node_ids`` lists the pipeline's nodes in order so that nodes the run never reached show as "not run"; a run
    ML Metadata has not seen at all (it failed before its first component) has every node "not run".
    """
    run_context = contexts.find_run(store, run_id, pipeline_name)
    if run_context is None and not node_ids:
        raise LookupError(f"pipeline '{pipeline_name}' has no run {run_id!r} in this store")
    executions = sorted(store.get_executions_by_context(run_context.id), key=lambda e: e.id) if run_context else []
    node_of_execution = contexts.node_of_executions(store, executions)
    records = {node_id: ComponentRecord(node_id, states.NOT_RUN) for node_id in node_ids}
    for execution in executions:
        node_id = node_of_execution.get(execution.id, f"execution {execution.id}")
        state = states.of_execution(execution)
        # A running execution's last update is its start: its time so far is the clock's.
        end = time.time() * 1000 if state == states.RUNNING else execution.last_update_time_since_epoch
        seconds = (end - execution.create_time_since_epoch) / 1000
        records[node_id] = ComponentRecord(node_id, state, seconds, error_message(execution), execution.id)
    return list(records.values())


def read_run(
    store: metadata_store.MetadataStore,
    pipeline_name: str,
    node_ids: Sequence[str] = (),
    run_id: str | None = None,
    candidates: Sequence[str] = (),
) -> RunReport:
    """Reads the run ``run_id`` (default: the newest) of ``pipeline_name`` from ``store``.

    Args:
        store: an open ML Metadata store (``runs.store``).
        pipeline_name: the pipeline's name (``pipeline.name`` of the config).
        node_ids: the pipeline's nodes in order, so that nodes the run never reached show as "not run".
        run_id: the run to read; the newest when None.
        candidates: the candidate models in config order, so the report lists them in that order too.

    Returns:
        Each component's outcome, each candidate's evaluation, the selector's decision, the pushed model and
        the anomalies, as ML Metadata and the components' outputs recorded them.
    """
    run_id = run_id or latest_run_id(store, pipeline_name)
    if run_id is None:
        raise LookupError(f"pipeline '{pipeline_name}' has no run in this store")
    report = RunReport(
        pipeline_name=pipeline_name,
        run_id=run_id,
        components=read_components(store, pipeline_name, run_id, node_ids),
        candidates={name: CandidateRecord(name) for name in candidates},
    )
    for component in report.components:
        if component.execution_id is not None:
            for artifact in _outputs(store, component.execution_id):
                _read_output(store, component.node_id, artifact, report)
    return report


def _read_output(
    store: metadata_store.MetadataStore, node_id: str, artifact: metadata_store_pb2.Artifact, report: RunReport
) -> None:
    type_name = _artifact_type_name(store, artifact)
    candidate_name = names.candidate_of(node_id)
    candidate = None
    if candidate_name:
        candidate = report.candidates.setdefault(candidate_name, CandidateRecord(candidate_name))
    if type_name == "ModelBlessing":
        blessed = bool(artifact.custom_properties[names.BLESSED].int_value)
        if candidate is not None:
            candidate.blessed = blessed
        elif node_id == names.MODEL_SELECTOR:
            report.blessed = blessed
            report.selected = _string(artifact, names.SELECTION_WINNER) or None
            report.selection_reason = _string(artifact, names.SELECTION_REASON)
    elif type_name == "PushedModel":
        if artifact.custom_properties[tfx_compat.PUSHED_PROPERTY].int_value:
            report.pushed_path = artifact.custom_properties[tfx_compat.PUSHED_DESTINATION_PROPERTY].string_value
    elif type_name == "ModelEvaluation" and candidate is not None:
        evaluation = evaluation_results.read_metrics(artifact.uri)
        candidate.metrics = evaluation.candidate
        candidate.baseline_metrics = evaluation.baseline
        candidate.slice_metrics = evaluation.slices
    elif type_name == "ExampleAnomalies":
        _read_anomalies(artifact, report)


def _string(artifact: metadata_store_pb2.Artifact, key: str) -> str:
    value = artifact.custom_properties.get(key)
    return value.string_value if value is not None else ""


def _read_anomalies(artifact: metadata_store_pb2.Artifact, report: RunReport) -> None:
    splits = json.loads(artifact.properties["split_names"].string_value or "[]")
    try:
        report.anomalies = anomalies.summarize(anomalies.read_split_anomalies(artifact.uri, splits))
    except OSError:
        report.anomalies = []
