"""Airflow for real (slow, about 3 minutes): the DAG folder that ``taxi-pipeline compile --runner airflow`` writes
is loaded by Airflow's DagBag, and ``airflow dags test`` runs the whole TFX DAG on a 300-row slice of the data in
a temporary ``AIRFLOW_HOME`` with SQLite; ML Metadata then shows every component executed and a model pushed.

Airflow is configured only through environment variables, as on a Composer environment (its "Airflow
configuration overrides"): the DAG file imports TFX, which takes longer than the 30 s default of
``core.dagbag_import_timeout``, so that and ``core.dag_file_processor_timeout`` are raised.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from small_run import CANDIDATES, DOWNSTREAM, UPSTREAM_OF_EVALUATORS

from pipeline.config import PROJECT_DIR

VENV_BIN = Path(sys.executable).parent
NODES = {*UPSTREAM_OF_EVALUATORS, *DOWNSTREAM}


@pytest.fixture(scope="module")
def airflow_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("airflow")
    data = root / "data"
    data.mkdir()
    with open(PROJECT_DIR / "data" / "taxi.csv") as source:
        (data / "taxi.csv").write_text("".join(line for _, line in zip(range(301), source, strict=False)))
    home = root / "pipeline_home"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "300",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
    }
    overrides = [
        f"data.root={data}",
        "metadata.mysql_host=",
        "metadata.sqlite_path={home}/metadata.sqlite",
        "training.train_steps=20",
        "training.eval_steps=5",
        "evaluation.min_auc=0.0",
        "evaluation.max_auc_regression=1.0",
        "airflow.retries=0",
        f"candidates.names={','.join(CANDIDATES)}",
    ]
    compile_command = [str(VENV_BIN / "taxi-pipeline"), "compile", "--runner", "airflow"]
    compile_command += ["--output", str(root / "dags"), "--home", str(home)]
    for override in overrides:
        compile_command += ["--set", override]
    subprocess.run(compile_command, env=env, check=True, capture_output=True, timeout=60)
    subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return {"env": env, "root": root, "home": home}


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
    "catchup": taxi.catchup,
    "retries": {task.retries for task in taxi.tasks}.pop(),
    "upstream": sorted(taxi.get_task("Trainer_linear").upstream_task_ids),
    "selector_upstream": sorted(taxi.get_task("ModelSelector").upstream_task_ids),
}))
"""


def test_dag_folder_imports_without_errors(airflow_setup):
    import json

    result = subprocess.run(
        [sys.executable, "-c", DAGBAG_CHECK], env=airflow_setup["env"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert found["dags"] == ["taxi", "taxi_on_vertex"]
    assert set(found["tasks"]) == NODES  # one task per component
    assert found["schedule"] == "0 3 * * *" and found["catchup"] is False and found["retries"] == 0
    assert found["upstream"] == ["Transform", "ValidationGate"]
    assert found["selector_upstream"] == [
        "Evaluator_linear",
        "Evaluator_wide_and_deep",
        "Trainer_linear",
        "Trainer_wide_and_deep",
    ]


def test_airflow_dags_test_runs_every_component_and_pushes_a_model(airflow_setup):
    result = subprocess.run(
        [str(VENV_BIN / "airflow"), "dags", "test", "taxi", "2024-01-02"],
        env=airflow_setup["env"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert "Marking run <DagRun taxi" not in log or "failed" not in log.split("Marking run <DagRun taxi")[-1][:300]

    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(airflow_setup["home"] / "metadata.sqlite")
    store = metadata_store.MetadataStore(connection, enable_upgrade_migration=False)
    states = {}
    for execution in store.get_executions():
        states[execution.properties["component_id"].string_value] = execution.properties["state"].string_value
    assert set(states) == NODES
    assert set(states.values()) <= {"complete", "cached"}, states

    # Both candidates pass the thresholds set above; the selector records which one won and why.
    selections = [b for b in store.get_artifacts_by_type("ModelBlessing") if "selection_winner" in b.custom_properties]
    assert len(selections) == 1
    assert selections[0].custom_properties["selection_winner"].string_value in {"wide_and_deep", "linear"}
    assert "highest auc" in selections[0].custom_properties["selection_reason"].string_value

    pushed = store.get_artifacts_by_type("PushedModel")
    assert [artifact.custom_properties["pushed"].int_value for artifact in pushed] == [1]
    versions = list((airflow_setup["home"] / "serving" / "taxi").iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
