"""Runs the pipeline on this machine: LocalDagRunner, in-process Beam, the ML Metadata store of ``[metadata]`` (the
SQLite file under ``--home``, or a MySQL server such as the one Composer's runs write to).

``run_local`` is what ``taxi-pipeline run`` and the end-to-end tests call: it runs the pipeline while reporting
each component's progress, and returns what ML Metadata recorded about the run. Checking the user's input
before TensorFlow loads is the command line's job (``cli/preflight.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

import tfx_compat
from pipeline import metadata, names
from pipeline.config import PipelineConfig
from pipeline.errors import UserError
from runs import active, catalog, states
from runs import report as run_report
from runs.store import open_store


@dataclasses.dataclass
class LocalRun:
    """The outcome of one local run."""

    report: run_report.RunReport
    error: BaseException | None = None

    @property
    def stopped_at_gate(self) -> bool:
        return any(c.node_id == names.VALIDATION_GATE and c.state == states.FAILED for c in self.report.components)

    @property
    def succeeded(self) -> bool:
        return self.error is None and not self.report.failed


@dataclasses.dataclass
class ComponentProgress:
    """One component's state during a run, as the progress display shows it."""

    node_id: str
    state: str = states.WAITING
    started: float | None = None
    ended: float | None = None

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.monotonic()) - self.started


class ProgressTracker(logging.Handler):
    """Follows LocalDagRunner's log and keeps each component's state; calls ``on_change`` on each change.

    LocalDagRunner reports progress only in its log (the lines ``tfx_compat`` names), and ML Metadata learns of
    a cached component only after it is done, so the log is the one live source.
    """

    def __init__(self, node_ids: Sequence[str], on_change: Callable[[ComponentProgress], None] = lambda _: None):
        super().__init__(level=logging.INFO)
        self.components = {node_id: ComponentProgress(node_id) for node_id in node_ids}
        self._current: ComponentProgress | None = None
        self._on_change = on_change
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed third-party log call must not break the run
            return
        with self._lock:
            if match := tfx_compat.COMPONENT_RUNNING.match(message):
                component = self.components.setdefault(match[1], ComponentProgress(match[1]))
                component.state, component.started = states.RUNNING, time.monotonic()
                self._current = component
            elif tfx_compat.CACHED_EXECUTION_USED.match(message) and self._current is not None:
                self._current.state = states.CACHED
                component = self._current
            elif match := tfx_compat.COMPONENT_FINISHED.match(message):
                component = self.components.setdefault(match[1], ComponentProgress(match[1]))
                component.ended = time.monotonic()
                self._current = None
                if component.state != states.RUNNING:
                    return  # already reported as cached
                component.state = states.DONE
            else:
                return
        self._on_change(component)

    def finish(self, failed: bool) -> None:
        """Marks the component that was running as failed (if the run failed) and the rest as not run, and reports
        those changes like any other (a display that prints one line per change prints the failure too)."""
        changed = []
        with self._lock:
            for component in self.components.values():
                if component.state == states.RUNNING:
                    component.state = states.FAILED if failed else states.DONE
                    component.ended = time.monotonic()
                    changed.append(component)
                elif component.state == states.WAITING:
                    component.state = states.NOT_RUN
        for component in changed:
            self._on_change(component)


def new_run_id() -> str:
    """A run id in the form LocalDagRunner gives its own: the start time, ``2026-12-01T23:29:35.141882``."""
    return datetime.datetime.now().isoformat()


def run_local(
    config: PipelineConfig,
    *,
    run_id: str | None = None,
    log_path: str | Path = "",
    on_start: Callable[[ProgressTracker], None] = lambda _: None,
    on_change: Callable[[ComponentProgress], None] = lambda _: None,
) -> LocalRun:
    """Runs the whole pipeline with LocalDagRunner and reads the run back from ML Metadata.

    Args:
        config: the resolved config; its ``[metadata]`` must name a store (SQLite file or MySQL server).
        run_id: the run's id (``new_run_id()`` when None).
        log_path: the run's log file, recorded with the run for the run explorer.
        on_start: receives the progress tracker once the pipeline is built (TensorFlow loaded).
        on_change: called on every component state change.

    Returns:
        The run's report as ML Metadata recorded it, and the exception that ended it, if any. Failures inside
        the pipeline are returned, not raised, so the caller can always show what happened. A home another run
        holds raises ``runs.active.HomeBusyError`` before anything runs.
    """
    connection = reachable_store(config)
    run_id = run_id or new_run_id()

    with active.hold(config.home, run_id, log_path, config.to_json()) as lock:
        tfx_compat.prepare_tensorflow()
        from absl import logging as absl_logging

        from pipeline.pipeline import create_pipeline, node_graph

        pipeline = create_pipeline(config, metadata_connection=connection)
        parallel_beam_where_it_pays(config, pipeline.components)
        tfx_compat.install_beam_memos()  # DoFn inspection and option parsing once: 10-25% of each Beam step
        lock.update(nodes=node_graph(pipeline.components))
        node_ids = [component.id for component in pipeline.components]
        tracker = ProgressTracker(node_ids, on_change)
        on_start(tracker)

        absl_logging.set_verbosity(absl_logging.INFO)  # the tracker reads LocalDagRunner's INFO lines
        absl_logger = logging.getLogger("absl")
        absl_logger.addHandler(tracker)
        error: BaseException | None = None
        with _interrupts_noted() as interrupted:
            try:
                tfx_compat.run_locally_as(pipeline, run_id)
            except Exception as failure:  # noqa: BLE001 - any component failure is reported from MLMD below
                error = failure
            except KeyboardInterrupt as interrupt:  # Ctrl-C, or Stop in the run explorer: recorded, passed on
                error = interrupt
            finally:
                absl_logger.removeHandler(tracker)
                tracker.finish(failed=error is not None)

        store = open_store(connection, read_only=False)
        report = run_report.read_run(
            store, config.pipeline.name, node_ids, run_id=run_id, candidates=config.candidates.names
        )
        _record_run(config, report, store, lock.run, interrupted=interrupted.is_set())
    if interrupted.is_set():
        raise KeyboardInterrupt
    return LocalRun(report=report, error=error)


# DirectRunner's multi_processing with a worker per core (0), for the steps that read ExampleGen's output and gain
# from it. A step splits its input across workers by the files it reads: ExampleGen writes a split in several files
# (one per 32 MiB of CSV, tfx_compat/shuffled_shards.py), but reads the CSV as one, so on two workers it was no
# faster (140.1 s against 136.5 s at 1.5M trips) and took 2.8 GB instead of 1.0 GB. The Evaluators, since they
# add up batches (pipeline/evaluator_udfs.py), were slower on two workers (23.2-24.3 s against 18.1-22.3 s at
# 1.5M) and took 3.8 GB instead of 1.6 GB: each worker loads TensorFlow and both models (bench/README.md). Both stay
# in-process.
PARALLEL_BEAM_ARGS = ("--direct_num_workers=0", "--direct_running_mode=multi_processing")
PARALLEL_BEAM_NODES = ("StatisticsGen", "Transform")


def parallel_beam_where_it_pays(config: PipelineConfig, components: Sequence[Any]) -> list[str]:
    """Gives StatisticsGen and Transform, the Beam steps that read all the examples and gain from a second core,
    one worker process per core when the input is bigger than
    ``beam.parallel_above_mb``; returns the ids of the components changed. Below that size, starting the worker
    processes (each imports TensorFlow) costs more than the second core gives back."""
    threshold_mb = config.beam.parallel_above_mb
    root = Path(config.data.root)
    if not threshold_mb or config.data.bigquery_query or not root.is_dir():
        return []
    size = sum(path.stat().st_size for path in root.iterdir() if path.is_file())
    if size <= threshold_mb * 1_000_000:
        return []
    chosen = [component for component in components if component.id.startswith(PARALLEL_BEAM_NODES)]
    for component in chosen:
        component.with_beam_pipeline_args(list(PARALLEL_BEAM_ARGS))
    logging.getLogger(__name__).info(
        "input of %.0f MB: %s run on a Beam worker per core", size / 1e6, ", ".join(c.id for c in chosen)
    )
    return [component.id for component in chosen]


def reachable_store(config: PipelineConfig) -> metadata_store_pb2.ConnectionConfig:
    """The run's ML Metadata connection, opened once before anything loads (``taxi-pipeline run`` calls it with its
    input checks): a store that cannot be reached (wrong host or password, no server) is a user mistake said in
    one line, not a failure inside the first component.
    ML Metadata creates the SQLite file, or the MySQL database and its tables, on this first open."""
    connection = metadata.connection_config(config)
    if connection is None:
        raise UserError(
            f"profile '{config.profile}' names no ML Metadata store; the local runner needs metadata.sqlite_path "
            "or metadata.mysql_host"
        )
    if connection.HasField("sqlite"):
        Path(connection.sqlite.filename_uri).parent.mkdir(parents=True, exist_ok=True)
        return connection
    settings = config.metadata
    # A plain client first: it says why the server refuses us ("Access denied for user ..."), where ML Metadata
    # only logs that the connection failed (on the terminal, before the run's log takes stderr).
    refusal = _mysql_refusal(connection.mysql)
    if not refusal:
        try:
            open_store(connection, read_only=False)
        except Exception as error:  # noqa: BLE001 - ML Metadata raises its own status errors for every cause
            refusal = str(error).strip() or type(error).__name__
    if refusal:
        hint = "" if connection.mysql.password else f" (no password: ${settings.mysql_password_env} is not set)"
        raise UserError(
            f"cannot open ML Metadata on MySQL {settings.mysql_user}@{settings.mysql_host}:{settings.mysql_port}"
            f"/{settings.mysql_database}: {refusal}{hint}"
        )
    return connection


def _mysql_refusal(mysql: metadata_store_pb2.MySQLDatabaseConfig) -> str:
    """Why the MySQL server refuses us, in its own words; empty when a plain client connects."""
    import pymysql

    try:
        pymysql.connect(
            host=mysql.host, port=mysql.port, user=mysql.user, password=mysql.password, connect_timeout=10
        ).close()
    except pymysql.err.MySQLError as refusal:
        return str(refusal.args[-1]) if refusal.args else str(refusal)
    return ""


@contextlib.contextmanager
def _interrupts_noted() -> Iterator[threading.Event]:
    """Notes a SIGINT (Ctrl-C, or Stop in the run explorer) while the pipeline runs, then raises
    KeyboardInterrupt as Python would. A component's executor may catch that KeyboardInterrupt and fail with an
    error of its own instead; the note still tells the run was interrupted, not broken."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted  # signal handlers belong to the main thread; a run elsewhere has no Ctrl-C of its own
        return

    def note(signum: int, frame: Any) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _record_run(
    config: PipelineConfig,
    report: run_report.RunReport,
    store: metadata_store.MetadataStore,
    run: active.ActiveRun,
    *,
    interrupted: bool = False,
) -> None:
    """Saves the resolved config and the report under ``<home>/runs/<run id>/``, and the config, the pipeline's
    nodes and the log's path on the run's context in ML Metadata (the run explorer reads them there)."""
    run_dir = Path(config.home) / "runs" / report.run_id.replace(":", "-")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.to_json())
    (run_dir / "report.json").write_text(report.to_json())
    context = store.get_context_by_type_and_name("pipeline_run", report.run_id)
    if context is not None:
        context.custom_properties[names.RUN_CONFIG].string_value = config.to_json()
        context.custom_properties[names.RUN_DAG].string_value = json.dumps(run.nodes)
        context.custom_properties[names.RUN_LOG].string_value = run.log_path
        for key, value in catalog.summary_properties(report, config.to_json(), interrupted=interrupted).items():
            context.custom_properties[key].string_value = value
        store.put_contexts([context])
