"""Benchmark: the run explorer's pages on a store of 1,000 runs, side by side with the ML Metadata calls they need.

The store is built through the ML Metadata API from a real run's records (``--source``, a pipeline home with at
least one finished run, e.g. ``make run``'s ./pipeline_home): its contexts, executions, artifacts and events are
recorded again for each new run, the way TFX records them (a run context under the pipeline context, each
execution attributed to its run and node, outputs as new artifacts, inputs linked to this run's outputs). The
copies point at the source's files, so artifact pages read real statistics and evaluations.

Each page is requested ``--repeat`` times in-process (Starlette's test client, so the figure is the server's own
time: routing, ML Metadata, rendering) after one warm-up request, and the plain ML Metadata calls behind it are
timed the same way. With Chromium present, the first paint of the runs list and a run page is measured too.

    .venv/bin/python -m bench.ui [--source pipeline_home] [--runs 1000] [--repeat 30] [--keep DIR]

Run it as a module (``-m bench.ui``): as a script, Python would put ``bench/`` first on the import path, where
this file's own name hides the ``ui`` package. With ``--keep DIR`` the store is kept there, and a later run with
the same ``--keep`` measures it again without rebuilding it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGET_P95_MS = 300.0
TARGET_FIRST_PAINT_MS = 1000.0
TIMED_PAGES = ("runs list", "run page", "models page")


def build_store(source_home: Path, target: Path | Any, runs: int) -> tuple[str, list[str]]:
    """Records ``runs`` copies of the source home's newest run into a new store: a SQLite file at ``target``, or
    the ML Metadata ``ConnectionConfig`` ``target`` (e.g. a MySQL database; the tests use one)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    from pipeline import names
    from runs import contexts, report
    from runs.store import open_sqlite

    source = open_sqlite(source_home / "metadata.sqlite")
    pipelines = source.get_contexts_by_type("pipeline")
    if not pipelines:
        raise SystemExit(f"{source_home} has no runs: run `make run` (or taxi-pipeline run --home ...) first")
    pipeline_name = pipelines[0].name
    finished = [
        context
        for context in (
            source.get_context_by_type_and_name("pipeline_run", r) for r in report.run_ids(source, pipeline_name)
        )
        if names.RUN_ROW in context.custom_properties
    ]
    done = [c for c in finished if c.custom_properties[names.RUN_STATE].string_value == "done"]
    if not finished:
        raise SystemExit(f"{source_home} has no finished run with a run record; run the pipeline once more")
    run_context = (done or finished)[-1]  # the newest run that finished well, if there is one
    if isinstance(target, pb.ConnectionConfig):
        connection = target
    else:
        connection = pb.ConnectionConfig()
        connection.sqlite.filename_uri = str(target)
        connection.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(connection)

    def copy_type(kind: str, type_id: int) -> int:
        original = getattr(source, f"get_{kind}_types_by_id")([type_id])[0]
        fresh = type(original)()
        fresh.CopyFrom(original)
        fresh.ClearField("id")
        return getattr(store, f"put_{kind}_type")(fresh)

    context_types = {t.name: copy_type("context", t.id) for t in source.get_context_types()}
    pipeline = pb.Context(name=pipeline_name, type_id=context_types["pipeline"])
    [pipeline.id] = store.put_contexts([pipeline])

    executions = sorted(source.get_executions_by_context(run_context.id), key=lambda e: e.id)
    node_of = contexts.node_of_executions(source, executions)
    nodes: dict[str, pb.Context] = {}
    for node_id in node_of.values():
        node = pb.Context(name=f"{pipeline_name}.{node_id}", type_id=context_types["node"])
        [node.id] = store.put_contexts([node])
        nodes[node_id] = node
    events = source.get_events_by_execution_ids([e.id for e in executions])
    artifacts = {a.id: a for a in source.get_artifacts_by_id(list({e.artifact_id for e in events}))}
    execution_types: dict[int, int] = {}
    artifact_types: dict[int, int] = {}
    start = datetime.datetime(2026, 1, 1)
    run_ids = []
    for index in range(runs):
        run = pb.Context(type_id=context_types["pipeline_run"])
        run.name = (start + datetime.timedelta(minutes=index)).isoformat(timespec="microseconds")
        for key, value in run_context.custom_properties.items():
            run.custom_properties[key].CopyFrom(value)
        [run.id] = store.put_contexts([run])
        store.put_parent_contexts([pb.ParentContext(child_id=run.id, parent_id=pipeline.id)])
        run_ids.append(run.name)
        copies: dict[int, int] = {}  # source artifact id -> its copy in this run
        for execution in executions:
            fresh = pb.Execution()
            fresh.CopyFrom(execution)
            fresh.ClearField("id")
            fresh.ClearField("name")
            fresh.ClearField("create_time_since_epoch")
            fresh.ClearField("last_update_time_since_epoch")
            if execution.type_id not in execution_types:
                execution_types[execution.type_id] = copy_type("execution", execution.type_id)
            fresh.type_id = execution_types[execution.type_id]
            pairs = []
            for event in (e for e in events if e.execution_id == execution.id):
                artifact = artifacts[event.artifact_id]
                if artifact.type_id not in artifact_types:
                    artifact_types[artifact.type_id] = copy_type("artifact", artifact.type_id)
                copy = pb.Artifact()
                copy.CopyFrom(artifact)
                copy.ClearField("name")
                copy.ClearField("create_time_since_epoch")
                copy.ClearField("last_update_time_since_epoch")
                copy.type_id = artifact_types[artifact.type_id]
                if event.type == pb.Event.OUTPUT or artifact.id not in copies:
                    copy.ClearField("id")
                else:
                    copy.id = copies[artifact.id]
                new_event = pb.Event(type=event.type, path=event.path)
                pairs.append((copy, new_event))
            ids = store.put_execution(fresh, pairs, [pipeline, run, nodes[node_of[execution.id]]])
            for (_, new_event), artifact_id in zip(pairs, ids[1], strict=True):
                source_id = next(
                    e.artifact_id for e in events if e.execution_id == execution.id and e.path == new_event.path
                )
                if new_event.type == pb.Event.OUTPUT:
                    copies[source_id] = artifact_id
    return pipeline_name, run_ids


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` calls, after one warm-up call."""
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO / "pipeline_home", help="a home with a finished run")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", type=Path, default=None, help="build the store here and keep it")
    args = parser.parse_args()

    from tfx_compat import prepare_tensorflow

    prepare_tensorflow()
    work = args.keep or Path(tempfile.mkdtemp(prefix="taxi-ui-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    home.mkdir(exist_ok=True)
    target = home / "metadata.sqlite"
    started = time.perf_counter()
    if args.keep and target.exists():
        pipeline_name, run_ids = _existing(target)
        print(f"store: {len(run_ids)} runs, kept from before")
    else:
        pipeline_name, run_ids = build_store(args.source.resolve(), target, args.runs)
        print(f"store: {len(run_ids)} runs copied from {args.source} in {time.perf_counter() - started:.0f} s")
    print(f"  {target.stat().st_size / 1e6:.1f} MB at {target}")

    from starlette.testclient import TestClient

    from pipeline.config import load_config
    from runs import nodes, report
    from runs.store import open_sqlite, reader_for
    from ui.app import create_app
    from ui.settings import UiSettings

    source_config = load_config("local", home=str(args.source.resolve()))
    # The copied artifacts point into the source's pipeline root: the explorer reads files from there.
    config = source_config.model_copy(update={"home": str(home)})
    config = config.model_copy(update={"metadata": config.metadata.model_copy(update={"sqlite_path": str(target)})})
    app = create_app(UiSettings(config=config), reader_for(config))
    store = open_sqlite(target)
    middle = run_ids[len(run_ids) // 2]
    components = report.read_components(store, pipeline_name, middle)
    trainer = next(c for c in components if c.node_id.startswith("Trainer_"))
    statistics_id = _output_id(store, next(c for c in components if c.node_id == "StatisticsGen").execution_id)
    pushed_id = _output_id(store, next(c for c in components if c.node_id == "Pusher").execution_id)

    pages = {
        "runs list": "/",
        "runs list, failed only": "/?state=failed",
        "runs list, page 20": "/?page=20",
        "run page": f"/runs/{middle}",
        "run graph (live refresh)": f"/runs/{middle}/graph",
        "node page": f"/runs/{middle}/nodes/{trainer.node_id}",
        "models page": f"/runs/{middle}/models",
        "artifact: statistics": f"/artifacts/{statistics_id}",
        "lineage of the pushed model": f"/artifacts/{pushed_id}/lineage",
        "compare": f"/compare?a={run_ids[0]}&b={middle}&only=1",
    }
    mlmd = {
        "runs list": lambda: store.get_contexts(list_options=_runs_query(pipeline_name)),
        "run page": lambda: [
            store.get_contexts_by_execution(e.id)
            for e in store.get_executions_by_context(store.get_context_by_type_and_name("pipeline_run", middle).id)
        ],
        # Every node's outputs of the run, as runs.nodes.run_outputs reads them (the evaluations are cached).
        "models page": lambda: nodes.run_outputs(store, middle),
    }
    print(f"\nserver time per page, ms (median / p95 of {args.repeat}); the ML Metadata calls it needs beside it")
    print(f"  {'page':32} {'median':>8} {'p95':>8}   {'MLMD median':>11} {'MLMD p95':>9}   target")
    failures = []
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for name, path in pages.items():
            answer = client.get(path)
            if answer.status_code != 200:
                print(f"  {name:32} HTTP {answer.status_code}: {answer.text[:200]}")
                failures.append(name)
                continue
            samples = timed(lambda path=path: client.get(path), args.repeat)
            p50, p95 = statistics.median(samples), percentile(samples, 0.95)
            plain = ""
            if name in mlmd:
                calls = timed(mlmd[name], args.repeat)
                plain = f"{statistics.median(calls):11.1f} {percentile(calls, 0.95):9.1f}"
            target = ""
            if name in TIMED_PAGES:
                ok = p95 <= TARGET_P95_MS
                target = f"p95 <= {TARGET_P95_MS:.0f}: {'PASS' if ok else 'FAIL'}"
                if not ok:
                    failures.append(name)
            print(f"  {name:32} {p50:8.1f} {p95:8.1f}   {plain:>21}   {target}")
    _first_paint(app, [pages["runs list"], pages["run page"]])
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("\nall targets met" if not failures else f"\nmissed: {', '.join(failures)}")
    return 0


def _existing(target: Path) -> tuple[str, list[str]]:
    from runs import report
    from runs.store import open_sqlite

    store = open_sqlite(target)
    pipeline_name = store.get_contexts_by_type("pipeline")[0].name
    return pipeline_name, report.run_ids(store, pipeline_name)


def _runs_query(pipeline_name: str) -> Any:
    from ml_metadata.metadata_store import metadata_store

    return metadata_store.ListOptions(
        filter_query=f"type = 'pipeline_run' AND parent_contexts_a.name = '{pipeline_name}'",
        order_by=metadata_store.OrderByField.CREATE_TIME,
        is_asc=False,
        limit=25,
    )


def _output_id(store: Any, execution_id: int) -> int:
    events = store.get_events_by_execution_ids([execution_id])
    return next(e.artifact_id for e in events if e.type == e.OUTPUT)


def _first_paint(app: Any, paths: list[str]) -> None:
    """First contentful paint of each path in Chromium, served over loopback by a real server."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        print("\nfirst paint: skipped (no Chromium; install Debian's chromium package)")
        return
    from playwright.sync_api import sync_playwright

    from serving.server import serve_in_background

    server = serve_in_background(app)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            print("\nfirst contentful paint in Chromium, ms (fresh page each time, median of 5)")
            for path in paths:
                paints = []
                for _ in range(6):
                    page = browser.new_page()
                    page.goto(server.url + path)
                    paint = page.evaluate(
                        "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
                    )
                    paints.append(paint)
                    page.close()
                median = statistics.median(paints[1:])
                verdict = "PASS" if 0 <= median <= TARGET_FIRST_PAINT_MS else "FAIL"
                print(f"  {path[:60]:60} {median:7.0f}   target <= {TARGET_FIRST_PAINT_MS:.0f}: {verdict}")
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
