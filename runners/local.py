"""Runs the pipeline on this machine: LocalDagRunner, in-process Beam, the SQLite MLMD store under ``--home``.

``run_local`` is what ``taxi-pipeline run`` and the end-to-end tests call. It checks the input before loading
TensorFlow, runs the pipeline while reporting progress, and returns what MLMD recorded about the run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from pipeline import names
from pipeline.config import PipelineConfig
from runners import report as run_report
from runners.environment import prepare_tensorflow
from runners.errors import UserError
from runners.inputs import check_csv_folder
from runners.progress import ComponentProgress, ProgressTracker

GATE_NODE = names.VALIDATION_GATE
RUN_CONFIG_PROPERTY = "taxi_pipeline_config"


@dataclasses.dataclass
class LocalRun:
    """The outcome of one local run."""

    report: run_report.RunReport
    error: BaseException | None = None

    @property
    def stopped_at_gate(self) -> bool:
        return any(c.node_id == GATE_NODE and c.state == "failed" for c in self.report.components)

    @property
    def succeeded(self) -> bool:
        return self.error is None and not self.report.failed


def check_inputs(config: PipelineConfig) -> None:
    """Everything that can be checked without TensorFlow: the data folder and the curated schema file."""
    check_csv_folder(config.data.root)
    if not config.schema.path.startswith("gs://") and not Path(config.schema.path).is_file():
        raise UserError(f"curated schema {config.schema.path} not found (setting schema.path)")


def run_local(
    config: PipelineConfig,
    *,
    on_start: Callable[[ProgressTracker], None] = lambda _: None,
    on_change: Callable[[ComponentProgress], None] = lambda _: None,
) -> LocalRun:
    """Runs the whole pipeline with LocalDagRunner and reads the run back from MLMD.

    ``on_start`` receives the progress tracker once the pipeline is built (TensorFlow loaded); ``on_change``
    is called on every component state change. Failures inside the pipeline are returned, not raised, so the
    caller can always show what happened; user errors found before the run raise ``UserError``.
    """
    check_inputs(config)
    if not config.metadata.sqlite_path:
        raise UserError("the local runner needs metadata.sqlite_path (a SQLite ML Metadata file)")
    Path(config.metadata.sqlite_path).parent.mkdir(parents=True, exist_ok=True)

    prepare_tensorflow()
    from absl import logging as absl_logging
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(config)
    node_ids = [component.id for component in pipeline.components]
    tracker = ProgressTracker(node_ids, on_change)
    on_start(tracker)

    absl_logging.set_verbosity(absl_logging.INFO)  # the tracker reads LocalDagRunner's INFO lines
    absl_logger = logging.getLogger("absl")
    absl_logger.addHandler(tracker)
    error: BaseException | None = None
    try:
        LocalDagRunner().run(pipeline)
    except Exception as failure:  # noqa: BLE001 - any component failure is reported from MLMD below
        error = failure
    finally:
        absl_logger.removeHandler(tracker)
        tracker.finish(failed=error is not None)

    report = run_report.read_run(
        config.metadata.sqlite_path, config.pipeline.name, node_ids, candidates=config.candidates.names
    )
    _record_run(config, report)
    return LocalRun(report=report, error=error)


def _record_run(config: PipelineConfig, report: run_report.RunReport) -> None:
    """Saves the resolved config and the report under ``<home>/runs/<run id>/`` and the config in MLMD."""
    run_dir = Path(config.home) / "runs" / report.run_id.replace(":", "-")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.to_json())
    (run_dir / "report.json").write_text(report.to_json())

    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata.sqlite_path
    store = metadata_store.MetadataStore(connection)
    context = store.get_context_by_type_and_name("pipeline_run", report.run_id)
    if context is not None:
        context.custom_properties[RUN_CONFIG_PROPERTY].string_value = config.to_json()
        store.put_contexts([context])
