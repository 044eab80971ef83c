"""Composer as close as one machine allows (slow, about 6 minutes): the DAG folder ``taxi-pipeline compile --runner
airflow --profile composer`` writes, under a real Airflow scheduler with the LocalExecutor, Airflow's database on
PostgreSQL and ML Metadata in MariaDB through the composer profile's ``[metadata]`` keys (a user of its own, the
password in the environment variable the profile names).

The scheduler creates the runs itself (the DAG is unpaused with a two-minute schedule; no ``dags test``). In the
first run a Trainer's task process is killed with SIGKILL while its execution is registered in ML Metadata; Airflow
retries it (``[airflow] retries``) and the run succeeds and pushes a model. The next scheduled run reuses the cache.
Airflow is configured as docs/DEPLOY.md tells a Composer user, by reading its ``--update-airflow-configs`` line.

What one machine cannot show: the Cloud SQL proxy, ``gs://`` paths and Composer's own images (docs/DEPLOY.md).
Needs the PostgreSQL and MariaDB the project's machines run; skips, saying so, where they are absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from services import mariadb_account, postgres_database
from small_run import CANDIDATES, DOWNSTREAM, UPSTREAM_OF_EVALUATORS

from pipeline.config import PROJECT_DIR

VENV_BIN = Path(sys.executable).parent
NODES = {*UPSTREAM_OF_EVALUATORS, *DOWNSTREAM}
PARALLELISM = 3
KILLED = f"Trainer_{CANDIDATES[-1]}"
RESOLVER = "latest_blessed_model_resolver"
# Cached in the second run: everything whose inputs did not change. The Evaluators, the selector and the Pusher
# run again, as TFX intends: the resolver now finds the first run's model as the baseline.
CACHED_IN_SECOND_RUN = {"CsvExampleGen", "StatisticsGen", "SchemaGen", "ImportSchemaGen", "Transform"} | {
    f"Trainer_{name}" for name in CANDIDATES
}


def composer_overrides_from_deploy_doc() -> dict[str, str]:
    """The Airflow configuration overrides docs/DEPLOY.md tells a Composer user to set, as environment variables."""
    text = (PROJECT_DIR / "docs" / "DEPLOY.md").read_text()
    [line] = re.findall(r"--update-airflow-configs=(\S+)", text)
    overrides = {}
    for setting in line.split(","):
        key, value = setting.split("=")
        section, option = key.split("-", 1)
        overrides[f"AIRFLOW__{section.upper()}__{option.upper()}"] = value
    return overrides


class Composer:
    """A scheduler on a compiled DAG folder, and the two databases it writes."""

    def __init__(self, root: Path, airflow_db: str, account: Any):
        self.root, self.account = root, account
        self.home = root / "pipeline_home"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            **composer_overrides_from_deploy_doc(),
            account_password_variable(): account.password,
        }
        self.airflow_db = airflow_db.replace("postgresql+psycopg2://", "postgresql://")
        self.scheduler: subprocess.Popen | None = None
        self.overrides: list[str] = []  # the --set values the DAG folder was compiled with

    def airflow(self, *arguments: str, timeout: int = 300) -> str:
        result = subprocess.run(
            [str(VENV_BIN / "airflow"), *arguments], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result.stdout

    def query(self, sql: str, *parameters: Any) -> list[tuple]:
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.airflow_db)) as connection, connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchall()

    def start_scheduler(self) -> None:
        log = (self.root / "scheduler.log").open("w")
        self.scheduler = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "scheduler"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def scheduler_log(self) -> str:
        return (self.root / "scheduler.log").read_text()[-4000:]

    def stop(self) -> None:
        """Stops the scheduler and every process of this Airflow (task processes may outlive their parent)."""
        if self.scheduler is not None and self.scheduler.poll() is None:
            os.killpg(self.scheduler.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.scheduler.wait(timeout=30)
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.environ().get("AIRFLOW_HOME") == self.env["AIRFLOW_HOME"]:
                    process.kill()

    def dag_runs(self) -> list[tuple[str, str, str]]:
        return self.query("SELECT run_id, run_type, state FROM dag_run WHERE dag_id = 'taxi' ORDER BY start_date")

    def wait_for(self, what: str, found: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = found()
            if value:
                return value
            assert self.scheduler is None or self.scheduler.poll() is None, self.scheduler_log()
            time.sleep(0.3)
        pytest.fail(f"timed out waiting for {what}; runs: {self.dag_runs()}\n{self.scheduler_log()}")

    def finished_run(self, run_id: str) -> str:
        return self.wait_for(
            f"run {run_id} to finish",
            lambda: next((state for run, _, state in self.dag_runs() if run == run_id and state != "running"), None),
            timeout=900,
        )

    def failures(self, run_id: str) -> str:
        """The end of each failed task attempt's log in the run: what an assertion on the run's state shows."""
        logs = sorted((self.root / "airflow" / "logs" / "dag_id=taxi" / f"run_id={run_id}").glob("*/attempt=*.log"))
        failed = [log for log in logs if "ERROR - Task failed" in log.read_text()]
        return "\n".join(f"== {log.parent.name}/{log.name}\n{log.read_text()[-3000:]}" for log in failed)

    def mlmd(self):  # noqa: ANN201 - an ML Metadata store
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2

        connection = metadata_store_pb2.ConnectionConfig()
        connection.mysql.host, connection.mysql.port = self.account.host, self.account.port
        connection.mysql.database, connection.mysql.user = self.account.database, self.account.user
        connection.mysql.password = self.account.password
        return metadata_store.MetadataStore(connection)

    def executions(self, run_id: str) -> list[tuple[str, str]]:
        """(component id, TFX's state) of each execution the legacy drivers recorded for the run."""
        found = []
        for execution in self.mlmd().get_executions():
            if execution.properties["run_id"].string_value == run_id:
                properties = execution.properties
                found.append((properties["component_id"].string_value, properties["state"].string_value))
        return found


def account_password_variable() -> str:
    from pipeline.config import load_config

    return load_config("composer").metadata.mysql_password_env


@pytest.fixture(scope="module")
def composer(tmp_path_factory) -> Iterator[Composer]:
    root = tmp_path_factory.mktemp("composer")
    data = root / "data"
    data.mkdir()
    with open(PROJECT_DIR / "data" / "taxi.csv") as source:
        (data / "taxi.csv").write_text("".join(line for _, line in zip(range(301), source, strict=False)))
    with contextlib.ExitStack() as stack:
        airflow_db = stack.enter_context(postgres_database("taxi_airflow"))
        account = stack.enter_context(mariadb_account("taxi_mlmd"))
        composer = Composer(root, airflow_db, account)
        stack.callback(composer.stop)
        overrides = [
            f"data.root={data}",
            *account.overrides(),
            "training.train_steps=500",  # a Trainer runs long enough to be killed in the middle
            "training.eval_steps=5",
            "evaluation.min_auc=0.0",
            "evaluation.max_auc_regression=1.0",
            "airflow.retries=1",
            "airflow.retry_delay_minutes=0",
            "airflow.schedule=*/2 * * * *",
            f"airflow.parallelism={PARALLELISM}",
            f"candidates.names={','.join(CANDIDATES)}",
        ]
        composer.overrides = overrides
        command = [str(VENV_BIN / "taxi-pipeline"), "compile", "--runner", "airflow", "--profile", "composer"]
        command += ["--output", str(root / "dags"), "--home", str(composer.home)]
        for override in overrides:
            command += ["--set", override]
        subprocess.run(command, env=composer.env, check=True, capture_output=True, timeout=120)
        composer.airflow("db", "migrate")
        yield composer


DAGBAG_CHECK = """
import json
from airflow.models import DagBag
bag = DagBag(include_examples=False)
taxi = bag.dags["taxi"]
print(json.dumps({
    "errors": {path: str(error) for path, error in bag.import_errors.items()},
    "dags": sorted(bag.dag_ids),
    "tasks": sorted(taxi.task_ids),
    "schedule": taxi.schedule_interval,
    "max_active_tasks": taxi.max_active_tasks,
    "retries": sorted({task.retries for task in taxi.tasks}),
    "upstream": sorted(taxi.get_task("Trainer_linear").upstream_task_ids),
    "selector_upstream": sorted(taxi.get_task("ModelSelector").upstream_task_ids),
    "final_errors": [error.__name__ for error in
                     taxi.get_task("ValidationGate").python_callable.keywords["component_launcher_class"].final_errors],
    "import_seconds": {stat.file: stat.duration.total_seconds() for stat in bag.dagbag_stats},
}))
"""


@pytest.fixture(scope="module")
def dag_bag(composer) -> dict[str, Any]:
    """What Airflow's DagBag makes of the folder, before the scheduler starts (the import time on a quiet machine)."""
    result = subprocess.run(
        [sys.executable, "-c", DAGBAG_CHECK], env=composer.env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_dag_folder_imports_within_the_timeout_deploy_md_sets(composer, dag_bag):
    assert dag_bag["errors"] == {}
    assert dag_bag["dags"] == ["taxi", "taxi_on_vertex"]
    assert set(dag_bag["tasks"]) == NODES  # one task per component
    assert dag_bag["schedule"] == "*/2 * * * *" and dag_bag["retries"] == [1]
    assert dag_bag["final_errors"] == ["DataValidationError"]  # refused data is not retried
    assert dag_bag["max_active_tasks"] == PARALLELISM  # [airflow] parallelism
    # A Trainer reads ExampleGen's examples (Transform writes none), Transform's graph and the gate's schema.
    assert dag_bag["upstream"] == ["CsvExampleGen", "Transform", "ValidationGate"]
    assert dag_bag["selector_upstream"] == sorted(
        f"{kind}_{name}" for kind in ("Evaluator", "Trainer") for name in CANDIDATES
    )
    timeout = float(composer.env["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"])
    seconds = dag_bag["import_seconds"]["/taxi_pipeline_dag.py"]
    print(
        f"taxi_pipeline_dag.py imports in {seconds:.1f} s; dagbag_import_timeout from docs/DEPLOY.md: {timeout:.0f} s"
    )
    assert seconds < timeout / 4, "docs/DEPLOY.md's dagbag_import_timeout leaves too little headroom"


def test_the_scheduler_runs_the_dag_through_a_killed_worker_then_reuses_the_cache(composer, dag_bag, monkeypatch):
    composer.start_scheduler()
    # New DAGs start paused (core.dags_are_paused_at_creation), as on Composer: unpause once the scheduler's
    # DAG processor has parsed the file, and the scheduler creates the latest interval's run itself.
    composer.wait_for("the DAG to be parsed", lambda: composer.query("SELECT 1 FROM dag WHERE dag_id = 'taxi'"), 300)
    composer.airflow("dags", "unpause", "taxi")
    first = composer.wait_for("the first scheduled run", lambda: composer.dag_runs(), timeout=180)[0]
    first_run_id = first[0]
    assert first[1] == "scheduled"

    # A worker dies: the Trainer's task process is killed once ML Metadata holds its execution (state "new").
    def trainer_process() -> psutil.Process | None:
        registered = (KILLED, "new") in composer.executions(first_run_id)
        title = f"airflow task runner: taxi {KILLED} "
        for process in psutil.process_iter(["cmdline"]):
            if registered and title in " ".join(process.info["cmdline"] or ()):
                return process
        return None

    composer.wait_for(f"{KILLED} to be running", trainer_process, timeout=600).send_signal(signal.SIGKILL)

    assert composer.finished_run(first_run_id) == "success", composer.failures(first_run_id)
    tasks = dict(composer.query("SELECT task_id, state FROM task_instance WHERE run_id = %s", first_run_id))
    assert tasks == {node: "success" for node in NODES}
    tries = composer.query(
        "SELECT try_number, state FROM task_instance_history WHERE run_id = %s AND task_id = %s", first_run_id, KILLED
    )
    assert tries == [(1, "failed")]  # the killed try; the retry is the task instance that succeeded
    [(final_try,)] = composer.query(
        "SELECT try_number FROM task_instance WHERE run_id = %s AND task_id = %s", first_run_id, KILLED
    )
    assert final_try == 2

    # The candidates' branches ran side by side: some task of one overlapped some task of the other.
    intervals: dict[str, list[tuple[Any, Any]]] = {name: [] for name in CANDIDATES}
    for table in ("task_instance", "task_instance_history"):
        rows = composer.query(f"SELECT task_id, start_date, end_date FROM {table} WHERE run_id = %s", first_run_id)
        for task_id, start, end in rows:
            for name in CANDIDATES:
                if task_id in (f"Trainer_{name}", f"Evaluator_{name}"):
                    intervals[name].append((start, end))
    one, other = intervals.values()
    assert any(a_start < b_end and b_start < a_end for a_start, a_end in one for b_start, b_end in other), intervals

    # ML Metadata in MariaDB: one execution per component, each completed; the killed attempt's execution was the
    # one the retry completed, not a half-written one left behind.
    executions = composer.executions(first_run_id)
    assert sorted(component for component, _ in executions) == sorted(NODES)
    # (A resolver runs no executor: TFX's legacy driver records it as "cached" every time.)
    assert {state for node, state in executions if node != RESOLVER} == {"complete"}, executions
    store = composer.mlmd()
    pushed = store.get_artifacts_by_type("PushedModel")
    assert [artifact.custom_properties["pushed"].int_value for artifact in pushed] == [1]
    [version] = (composer.home / "serving" / "taxi").iterdir()
    assert (version / "saved_model.pb").is_file()

    # The next scheduled run (the next two-minute interval) reuses what did not change.
    second_run_id = composer.wait_for(
        "the next scheduled run",
        lambda: next(
            (run for run, kind, _ in composer.dag_runs() if run != first_run_id and kind == "scheduled"), None
        ),
        timeout=300,
    )
    assert composer.finished_run(second_run_id) == "success", composer.failures(second_run_id)
    composer.airflow("dags", "pause", "taxi")
    states = dict(composer.executions(second_run_id))
    assert {node for node, state in states.items() if state == "cached"} >= CACHED_IN_SECOND_RUN, states
    assert set(states.values()) <= {"cached", "complete"}, states
    assert composer.query("SELECT count(*) FROM import_error") == [(0,)]  # the scheduler's parses all succeeded

    monkeypatch.setenv(account_password_variable(), composer.account.password)
    check_run_explorer(composer, first_run_id, second_run_id)


def check_run_explorer(composer: Composer, first_run_id: str, second_run_id: str) -> None:
    """``taxi-pipeline ui --profile composer`` on the same ML Metadata (recorded by TFX's legacy launcher, in its
    own layout: ``runs.contexts``) shows both scheduled runs, their graphs, nodes, models and lineage."""
    from urllib.parse import quote

    from starlette.testclient import TestClient

    from pipeline.config import load_config
    from ui.app import create_app
    from ui.settings import UiSettings

    config = load_config("composer", composer.overrides, home=str(composer.home))
    with TestClient(create_app(UiSettings(config=config)), base_url="http://127.0.0.1") as client:
        runs = client.get("/")
        assert runs.status_code == 200 and runs.text.count('class="state state-done"') == 2, runs.text
        assert runs.text.index(second_run_id) < runs.text.index(first_run_id)  # newest first
        first = f"/runs/{quote(first_run_id)}"
        pages = {
            first: f"Trainer_{CANDIDATES[0]}",
            f"{first}/nodes/{KILLED}": "models.trainer.run_fn",
            f"{first}/models": "Confusion matrices",
            f"{first}/schemas": "Curated and inferred schema",
            f"/compare?a={quote(first_run_id)}&b={quote(second_run_id)}": "Candidates' metrics",
        }
        for page, text in pages.items():
            answer = client.get(page)
            assert answer.status_code == 200 and text in answer.text, page
        trainer = client.get(f"{first}/nodes/{KILLED}").text
        assert "<td>run_id</td>" not in trainer  # the legacy launcher's bookkeeping is not shown as parameters
        cached = client.get(f"/runs/{quote(second_run_id)}/nodes/Transform").text
        assert "outputs reused from" in cached and first_run_id in cached  # produced by the first run
        # The DAG recorded the pipeline's graph and config on each run's context (tfx_compat.airflow_metadata):
        first_page, second_page = client.get(first).text, client.get(f"/runs/{quote(second_run_id)}").text
        assert "settings, as the run resolved them" in first_page and "airflow.schedule" in first_page
        assert "Same configuration as" in second_page and f">{first_run_id}</a>" in second_page
        pusher = client.get(f"{first}/nodes/Pusher").text
        pushed_id = re.findall(r"/artifacts/(\d+)/lineage", pusher)[-1]  # the last artifact: the output
        lineage = client.get(f"/artifacts/{pushed_id}/lineage").text
        assert "input files" in lineage and "taxi.csv" in lineage
