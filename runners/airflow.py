"""Airflow and Cloud Composer: two ways to run the same pipeline on a schedule.

1. ``create_dag``: TFX's AirflowDagRunner turns ``create_pipeline(config)`` into an Airflow DAG with one task per
   component; the components run on the Airflow workers, which need this package and TFX installed. ML Metadata
   is the profile's (SQLite for a single machine, MySQL/Cloud SQL on Composer).
2. ``create_vertex_schedule_dag``: a light DAG whose only task submits the compiled spec to Vertex AI Pipelines
   and waits for it (``runners.vertex``). Composer then needs no TensorFlow; the work runs on Vertex.

``write_dags_folder`` (``taxi-pipeline compile --runner airflow``) writes what to upload to the dags bucket: the
two DAG files of ``dags/`` as they are, the profile and overrides beside them in ``dag_settings.json``, and a copy
of this package (Airflow puts the dags folder on ``sys.path``). The DAG file of option 1 imports TFX, which takes
30-60 s: raise Airflow's ``core.dagbag_import_timeout`` and ``core.dag_file_processor_timeout`` (docs/DEPLOY.md).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import tfx_compat
from pipeline import metadata, names
from pipeline.config import PROJECT_DIR, PipelineConfig, load_config
from pipeline.errors import UserError

# What the DAGs import on the workers, copied into the dags folder.
PACKAGES = ("pipeline", "models", "runners", "tfx_compat")
DAG_FILES = ("taxi_pipeline_dag.py", "taxi_vertex_schedule_dag.py")
# Written next to the DAG files by ``write_dags_folder``: the profile, overrides and home the TFX DAG runs with.
SETTINGS_FILE = "dag_settings.json"


def load_dag_config(profile: str, overrides: Sequence[str] = (), home: str | None = None) -> PipelineConfig:
    """The DAG's config: the profile, the overrides baked into the DAG file, then ``TAXI_PIPELINE_OVERRIDES``."""
    return load_config(profile, overrides, home=home, environment=os.environ)


def dag_arguments(config: PipelineConfig) -> dict[str, Any]:
    """DAG settings from ``[airflow]``: schedule, start date, no catchup, one run at a time, retries, and how many
    tasks run at once (the candidates' branches run side by side)."""
    try:
        start = datetime.datetime.fromisoformat(config.airflow.start_date)
    except ValueError:
        start_date = config.airflow.start_date
        raise UserError(f"airflow.start_date: expected a date like 2024-01-01, got {start_date!r}") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=datetime.UTC)
    return {
        "schedule": config.airflow.schedule or None,
        "start_date": start,
        "catchup": False,
        "max_active_runs": 1,
        "max_active_tasks": config.airflow.parallelism,
        "default_args": {
            "retries": config.airflow.retries,
            "retry_delay": datetime.timedelta(minutes=config.airflow.retry_delay_minutes),
        },
        "tags": ["taxi", "tfx"],
    }


def _metadata_connection(config: PipelineConfig):  # noqa: ANN202 - an ML Metadata ConnectionConfig
    """AirflowDagRunner needs an ML Metadata store from the config; a SQLite file's folder must exist."""
    connection = metadata.connection_config(config)
    if connection is None:
        raise UserError("Airflow needs an ML Metadata store: set metadata.mysql_host or metadata.sqlite_path")
    if connection.HasField("sqlite") and "://" not in connection.sqlite.filename_uri:
        Path(connection.sqlite.filename_uri).parent.mkdir(parents=True, exist_ok=True)
    return connection


def create_dag(dag_folder: str | Path | None = None):  # noqa: ANN201 - an airflow.DAG
    """The whole TFX pipeline as an Airflow DAG (one task per component), via TFX's AirflowDagRunner.

    The profile, overrides and home come from ``dag_settings.json`` in ``dag_folder`` when it is there (written
    by ``write_dags_folder``), else the ``composer`` profile as it is.
    """
    settings_file = Path(dag_folder or ".") / SETTINGS_FILE
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    config = load_dag_config(settings.get("profile", "composer"), settings.get("overrides", ()), settings.get("home"))
    tfx_compat.prepare_tensorflow()
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    from pipeline.pipeline import create_pipeline, node_graph

    pipeline = create_pipeline(config, metadata_connection=_metadata_connection(config))
    for component in pipeline.components:
        tfx_compat.name_airflow_artifacts_per_component(component)
    from pipeline.components.validation_gate import DataValidationError
    from tfx_compat.airflow_metadata import AirflowLauncher

    class Launcher(AirflowLauncher):
        """TFX's own launcher, with an ML Metadata handle that works where TFX 1.16's legacy one fails (a model that
        is both candidate and baseline, a task retried after its worker died) and that records failures
        (tfx_compat/airflow_metadata.py). Data the gate refused is final: a retry of the gate reads the same
        anomalies, so Airflow is told not to retry it (the profile's retries are for lost workers). Each run's
        context gets the pipeline's DAG and config, as a local run's does, for the run explorer."""

        final_errors = (DataValidationError,)
        run_properties: ClassVar[dict[str, str]] = {
            names.RUN_DAG: json.dumps(node_graph(pipeline.components)),
            names.RUN_CONFIG: config.to_json(),
        }

    runner = AirflowDagRunner(
        AirflowPipelineConfig(airflow_dag_config=dag_arguments(config), supported_launcher_classes=[Launcher])
    )
    return runner.run(pipeline)


def _submit_to_vertex(spec: str, profile: str, overrides: Sequence[str], **context: Any) -> str:
    from runners import kubeflow, vertex

    config = load_dag_config(profile, overrides)
    conf = (context.get("dag_run").conf or {}) if context.get("dag_run") else {}
    params = [f"{name}={value}" for name, value in conf.items()]
    return vertex.submit(
        spec,
        project=config.vertex.project,
        region=config.vertex.region,
        parameters=kubeflow.parse_parameters(kubeflow.read_spec(spec), params),
        labels=vertex.parse_labels(config.vertex.labels),
        service_account=config.vertex.service_account,
        wait=True,
    )


def create_vertex_schedule_dag(spec: str, profile: str = "vertex", overrides: Sequence[str] = ()):
    """A DAG with one task that runs the compiled spec on Vertex AI Pipelines and waits for it.

    Schedule and retries come from ``[airflow]`` of the profile; runtime parameters from the run's conf
    (``airflow dags trigger --conf '{"train_steps": 500}'``). Imports no TensorFlow.
    """
    from airflow import DAG
    from airflow.operators.python import PythonOperator

    config = load_dag_config(profile, overrides)
    with DAG(dag_id=f"{config.pipeline.name}_on_vertex", **dag_arguments(config)) as dag:
        PythonOperator(
            task_id="run_on_vertex",
            python_callable=_submit_to_vertex,
            op_kwargs={"spec": spec, "profile": profile, "overrides": list(overrides)},
        )
    return dag


def write_dags_folder(
    config: PipelineConfig, output: str | Path, *, profile: str, overrides: Sequence[str], home: str | None = None
) -> list[Path]:
    """Writes the folder to upload to the Composer dags bucket; returns the DAG files written.

    Args:
        config: the resolved config, only checked here: the DAG resolves the profile again where it runs, so
            ``{project}`` becomes the dags folder there.
        output: the folder to write.
        profile, overrides, home: what the TFX DAG loads its config from (``dag_settings.json``).
    """
    dag_arguments(config)  # fails now, not on Composer, if the [airflow] settings are wrong
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        target = output / package
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(
            PROJECT_DIR / package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        )
    for extra in ("schema", "setup.py"):
        source = PROJECT_DIR / extra
        if source.is_dir():
            shutil.copytree(source, output / extra, dirs_exist_ok=True)
        else:
            shutil.copy2(source, output / extra)
    # Only the two DAG files are DAGs; Airflow must not parse the package's modules as DAG candidates.
    ignored = [f"^{name}/" for name in (*PACKAGES, "schema")] + ["^setup\\.py$"]
    (output / ".airflowignore").write_text("\n".join(ignored) + "\n")
    settings = {"profile": profile, "overrides": list(overrides), "home": home}
    (output / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    written = []
    for name in DAG_FILES:
        shutil.copy2(PROJECT_DIR / "dags" / name, output / name)
        written.append(output / name)
    return written
