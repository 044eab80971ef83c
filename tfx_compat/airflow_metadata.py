"""The ML Metadata handle of TFX's Airflow orchestrator, with two things TFX 1.16 gets wrong put right.

TFX's Airflow orchestrator runs each component through the legacy launcher and driver, which record the
execution in ML Metadata before the executor starts: state "new", the inputs as INPUT events, the outputs as
PENDING artifacts (named by run, their URIs by execution id), and one ``component_run`` context per component and
run. ML Metadata 1.14 and later keep one event per artifact, execution and event type (a unique key), which
the legacy ``tfx.orchestration.metadata.Metadata`` does not respect in two cases:

1. **One artifact under two input keys.** In a run where nothing changed, a candidate's Trainer is cached and
   its model is also the latest blessed one, so the Evaluator gets the same artifact as ``model`` and as
   ``baseline_model``. The legacy handle puts two INPUT events for it; ML Metadata refuses the second (``Given
   event already exists``) and the Evaluator fails: every second scheduled run with unchanged data would fail.
   TFX's newer orchestrators (LocalDagRunner, Vertex, Kubeflow) put one event with both paths
   (``portable/mlmd/execution_lib._create_artifact_and_event_pairs``); so does ``AirflowMetadata``.
2. **An Airflow retry after the worker died** (a SIGKILL, an evicted pod). ``register_execution`` finds the
   component's run context, means to reuse the previous attempt's execution, but puts its INPUT events again
   (refused as above); and the driver then prepares the outputs again under the same names and URIs (refused:
   ``Given node already exists``). Every retry fails the same way, although the retry was Airflow's whole point.
   ``AirflowMetadata`` adds only the events the previous attempt lacks, and gives the outputs the ids of that
   attempt's pending ones after clearing what it wrote there (as TFX's newer launcher clears output folders, so
   no partial Beam shard or half SavedModel is read as output). The execution stays the same one, completed by
   the attempt that succeeds: ML Metadata holds one execution per component and run.

``AirflowLauncher`` (TFX's in-process launcher, given to ``AirflowPipelineConfig`` as its only launcher class)
hands the drivers an ``AirflowMetadata``.

Relies on (asserted in ``tests/unit/test_airflow_metadata.py``, which also shows both bugs are still there): the
private ``Metadata._prepare_execution`` and ``_artifact_and_event_pairs`` and the constant ``EXECUTION_STATE_NEW``
of ``tfx.orchestration.metadata``, ``get_component_run_context``, and the launchers' ``create`` passing
``metadata_connection`` by keyword.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Any, ClassVar

from ml_metadata import errors
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata as tfx_metadata
from tfx.orchestration.launcher.in_process_component_launcher import InProcessComponentLauncher

import tfx_compat

log = logging.getLogger(__name__)
# google.rpc.Code.UNKNOWN: what TFX's newer launcher records for an executor that raised.
UNKNOWN = 2


class AirflowMetadata(tfx_metadata.Metadata):
    """TFX's legacy ML Metadata handle with one event per artifact, and retries that work (see the module's text).

    ``run_properties``: string custom properties put on the run's ``run`` context when a component of the run
    first registers it, for the run explorer (the pipeline's DAG and config: ML Metadata keeps neither, and for a
    local run ``runners.local`` records them). Only missing ones are added: each task of a run passes through here,
    and the first (ExampleGen: every other task waits for it) writes them before any task runs beside another.
    """

    def __init__(self, connection_config: Any, run_properties: Mapping[str, str] | None = None) -> None:
        super().__init__(connection_config)
        self._run_properties = dict(run_properties or {})

    def register_pipeline_contexts_if_not_exists(self, pipeline_info: Any) -> list[metadata_store_pb2.Context]:
        found = super().register_pipeline_contexts_if_not_exists(pipeline_info)
        for context in found:
            if context.name != pipeline_info.pipeline_run_context_name or not pipeline_info.run_id:
                continue
            missing = {k: v for k, v in self._run_properties.items() if k not in context.custom_properties}
            if missing:
                for key, value in missing.items():
                    context.custom_properties[key].string_value = value
                self.store.put_contexts([context])
        return found

    def _artifact_and_event_pairs(self, artifact_dict: dict[str, list[Any]], event_type: Any, **kwargs: Any) -> list:
        """TFX's pairs, with an artifact that stands under several keys given one event with all their paths."""
        pairs = super()._artifact_and_event_pairs(artifact_dict=artifact_dict, event_type=event_type, **kwargs)
        merged: list = []
        first_event_of: dict[int, metadata_store_pb2.Event] = {}
        for pair in pairs:  # (artifact, event), or (artifact,) for one already registered with the execution
            artifact, event = pair[0], pair[1] if len(pair) > 1 else None
            earlier = first_event_of.get(artifact.id) if artifact.id else None
            if earlier is not None and event is not None:
                earlier.path.steps.extend(event.path.steps)
                continue
            if artifact.id and event is not None:
                first_event_of[artifact.id] = event
            merged.append(pair)
        return merged

    def register_execution(
        self,
        pipeline_info: Any,
        component_info: Any,
        contexts: list[metadata_store_pb2.Context],
        exec_properties: dict[str, Any] | None = None,
        input_artifacts: dict[str, list[Any]] | None = None,
    ) -> metadata_store_pb2.Execution:
        try:
            return super().register_execution(
                pipeline_info,
                component_info,
                contexts,
                exec_properties=exec_properties,
                input_artifacts=input_artifacts,
            )
        except errors.AlreadyExistsError:
            # Both of TFX's put_execution calls failed whole (each is one transaction): nothing was written.
            return self._register_again(pipeline_info, component_info, contexts, exec_properties, input_artifacts)

    def _register_again(
        self,
        pipeline_info: Any,
        component_info: Any,
        contexts: list[metadata_store_pb2.Context],
        exec_properties: dict[str, Any] | None,
        input_artifacts: dict[str, list[Any]] | None,
    ) -> metadata_store_pb2.Execution:
        """The previous attempt's execution, set back to "new", with only the input events it lacks added."""
        execution = self._prepare_execution(
            tfx_metadata.EXECUTION_STATE_NEW, exec_properties or {}, pipeline_info, component_info
        )
        run_context = self.get_component_run_context(component_info)
        if run_context is None:
            raise RuntimeError(f"no run context for {component_info.component_id}, yet ML Metadata said it exists")
        [previous] = self.store.get_executions_by_context(context_id=run_context.id)
        execution.id = previous.id
        recorded = {(event.artifact_id, event.type) for event in self.store.get_events_by_execution_ids([previous.id])}
        pairs = self._artifact_and_event_pairs(
            artifact_dict=input_artifacts or {}, event_type=metadata_store_pb2.Event.INPUT
        )
        missing = [(artifact, event) for artifact, event in pairs if (artifact.id, event.type) not in recorded]
        self.store.put_execution(execution=execution, artifact_and_events=missing, contexts=[*contexts, run_context])
        contexts.append(run_context)
        return execution

    def update_execution(
        self,
        execution: metadata_store_pb2.Execution,
        component_info: Any,
        input_artifacts: dict[str, list[Any]] | None = None,
        output_artifacts: dict[str, list[Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        if output_artifacts and execution.id:
            self._adopt_pending_outputs(execution.id, output_artifacts)
        super().update_execution(
            execution, component_info, input_artifacts=input_artifacts, output_artifacts=output_artifacts, **kwargs
        )

    def _adopt_pending_outputs(self, execution_id: int, output_artifacts: dict[str, list[Any]]) -> None:
        """On a retry, the driver prepares its outputs again under the same names and URIs (both derive from the
        run and the execution, which is the same one): they become the previous attempt's pending output artifacts
        (same ids, no second OUTPUT event; ML Metadata refuses a second artifact of one name), and whatever the
        killed attempt left in their folders is removed first, as TFX's own newer launcher clears output folders,
        so that no partial file of it (a Beam shard, half a SavedModel) is read as output."""
        from tfx.dsl.io import fileio

        pending = {}
        for event in self.store.get_events_by_execution_ids([execution_id]):
            if event.type == metadata_store_pb2.Event.OUTPUT and len(event.path.steps) == 2:
                key, index = event.path.steps[0].key, event.path.steps[1].index
                pending[(key, index)] = event.artifact_id
        uris = {artifact.id: artifact.uri for artifact in self.store.get_artifacts_by_id(list(pending.values()))}
        for key, artifacts in output_artifacts.items():
            for index, artifact in enumerate(artifacts):
                artifact_id = pending.get((key, index))
                if artifact.id or artifact_id is None or uris.get(artifact_id) != artifact.uri:
                    continue
                artifact.id = artifact_id
                if fileio.isdir(artifact.uri):
                    fileio.rmtree(artifact.uri)
                elif fileio.exists(artifact.uri):
                    fileio.remove(artifact.uri)


class AirflowLauncher(InProcessComponentLauncher):
    """TFX's in-process launcher with ``AirflowMetadata`` as the drivers' ML Metadata handle, which also records
    a failed executor in ML Metadata.

    Why: the legacy launcher records nothing when the executor raises, so a failed task's execution stays "new"
    (RUNNING) for good and the run explorer can only call its run running. This launcher marks it FAILED with the
    traceback, as TFX's newer launcher does (``execution_lib.set_execution_result``, read back by
    ``runs.report.error_message``); Airflow's retry registers the execution again, which sets it back to "new"
    (``AirflowMetadata._register_again`` puts it without the result).

    ``run_properties``: what to record on each run's context (a subclass sets them; ``AirflowMetadata``).

    ``final_errors``: errors a retry cannot mend (a subclass names them): the task fails at once with Airflow's
    ``AirflowFailException``, whatever the task's ``retries`` say, instead of failing again after each delay.
    """

    final_errors: tuple[type[BaseException], ...] = ()
    run_properties: ClassVar[dict[str, str]] = {}  # see AirflowMetadata

    def __init__(self, **kwargs: Any) -> None:
        connection = kwargs["metadata_connection"].connection_config
        kwargs["metadata_connection"] = AirflowMetadata(connection, run_properties=self.run_properties)
        super().__init__(**kwargs)

    def _run_executor(  # TFX's method, wrapped
        self, execution_id: int, input_dict: dict, output_dict: dict, exec_properties: dict
    ) -> None:
        tfx_compat.install_beam_memos()  # as in local runs
        try:
            super()._run_executor(execution_id, input_dict, output_dict, exec_properties)
        except Exception as error:
            self._record_failure(execution_id, traceback.format_exc())
            if isinstance(error, self.final_errors):
                from airflow.exceptions import AirflowFailException

                raise AirflowFailException(f"{type(error).__name__}: {error} (not retried)") from error
            raise

    def _record_failure(self, execution_id: int, message: str) -> None:
        """The execution marked FAILED with ``message``; a problem doing so is logged, never raised over the
        executor's own error (Airflow must still see that one)."""
        from tfx.orchestration.portable.mlmd import execution_lib
        from tfx.proto.orchestration import execution_result_pb2

        try:
            with self._metadata_connection as handle:
                [execution] = handle.store.get_executions_by_id([execution_id])
                execution.last_known_state = metadata_store_pb2.Execution.FAILED
                result = execution_result_pb2.ExecutionResult(code=UNKNOWN, result_message=message)
                execution_lib.set_execution_result(result, execution)
                handle.store.put_executions([execution])
        except Exception:  # noqa: BLE001 - the executor's error is the one that matters
            log.exception("could not record the failure of execution %d in ML Metadata", execution_id)
