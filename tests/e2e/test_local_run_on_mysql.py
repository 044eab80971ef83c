"""``taxi-pipeline run`` with ML Metadata in MySQL (MariaDB here, Cloud SQL on Composer): a profile key away from the
SQLite default. Needs the MariaDB the project's machines run (skips, saying so, where it is absent)."""

from __future__ import annotations

import os
import subprocess
import sys

from services import mariadb_account
from taxi_rows import read_rows, write_csv

from pipeline import names
from pipeline.config import PROJECT_DIR

CLI = [sys.executable, "-m", "cli.main"]
SMALL = [
    "training.train_steps=30",
    "training.eval_steps=3",
    "evaluation.min_auc=0.0",
    "candidates.names=linear",
]


def _run(arguments: list[str], password: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MLMD_MYSQL_PASSWORD": password}
    return subprocess.run(
        [*CLI, *arguments], cwd=PROJECT_DIR, env=environment, capture_output=True, text=True, timeout=900
    )


def test_a_local_run_records_into_mariadb_and_pushes(tmp_path):
    data = write_csv(tmp_path / "data", *read_rows(600))
    home = tmp_path / "home"
    with mariadb_account("taxi_local") as account:
        arguments = ["run", "--home", str(home), "--data", data]
        for override in [*SMALL, *account.overrides()]:
            arguments += ["--set", override]

        wrong = _run(arguments, password="not-the-password")
        assert wrong.returncode == 2, wrong.stdout + wrong.stderr
        lines = [line for line in (wrong.stdout + wrong.stderr).splitlines() if line.strip()]
        assert len(lines) == 1 and "Access denied" in lines[0] and account.user in lines[0], lines
        assert not (home / "pipeline_root").exists()  # refused before any work

        result = _run(arguments, password=account.password)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Traceback" not in result.stdout + result.stderr
        assert not (home / "metadata.sqlite").exists()  # the store is MariaDB's, not a file in the home
        versions = list((home / "serving" / "taxi").iterdir())
        assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()

        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2

        connection = metadata_store_pb2.ConnectionConfig()
        connection.mysql.host, connection.mysql.port = account.host, account.port
        connection.mysql.database, connection.mysql.user = account.database, account.user
        connection.mysql.password = account.password
        store = metadata_store.MetadataStore(connection)
        [run] = store.get_contexts_by_type("pipeline_run")
        assert '"mysql_host": "127.0.0.1"' in run.custom_properties[names.RUN_CONFIG].string_value
        assert account.password not in run.custom_properties[names.RUN_CONFIG].string_value
        from runs.report import read_components

        states = {component.node_id: component.state for component in read_components(store, "taxi", run.name)}
        assert "Pusher" in states and "Trainer_linear" in states
        assert set(states.values()) == {"done"}, states
        [pushed] = store.get_artifacts_by_type("PushedModel")
        assert pushed.custom_properties["pushed"].int_value == 1

        # The explorer's reading layer lists the run, done, from the same store.
        from runs.catalog import RunCatalog

        rows = RunCatalog(store, "taxi").page().rows
        assert [(row.run_id, row.state) for row in rows] == [(run.name, "done")]
