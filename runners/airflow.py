"""Airflow and Cloud Composer: two ways to run the same pipeline on a schedule.

1. ``create_dag``: TFX's AirflowDagRunner turns ``create_pipeline(config)`` into an Airflow DAG with one task per
   component; the components run on the Airflow workers, which need this package and TFX installed. ML Metadata
   is the profile's (SQLite for a single machine, MySQL/Cloud SQL on Composer).
2. ``create_vertex_schedule_dag``: a light DAG whose only task submits the compiled spec to Vertex AI Pipelines
   and waits for it (``runners.vertex``). Composer then needs no TensorFlow; the work runs on Vertex.

``write_dags_folder`` (``taxi-pipeline compile --runner airflow``) writes what to upload to the dags bucket: both
DAG files with the profile and overrides baked in, and a copy of this package (Airflow puts the dags folder on
``sys.path``). The DAG file of option 1 imports TFX, which takes 30-60 s: raise Airflow's
``core.dagbag_import_timeout`` and ``core.dag_file_processor_timeout`` (docs/DEPLOY.md).
"""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.config import PROJECT_DIR, ConfigError, PipelineConfig, load_config
from runners.errors import UserError

# Overrides added on the Airflow machine without editing the DAG file, separated by ";" or new lines.
OVERRIDES_ENV = "TAXI_PIPELINE_OVERRIDES"
PACKAGES = ("pipeline", "models", "runners")


def load_dag_config(profile: str, overrides: Sequence[str] = (), home: str | None = None) -> PipelineConfig:
    """The DAG's config: the profile, the overrides baked into the DAG file, then ``TAXI_PIPELINE_OVERRIDES``."""
    extra = [item.strip() for item in os.environ.get(OVERRIDES_ENV, "").replace("\n", ";").split(";")]
    try:
        return load_config(profile, [*overrides, *(item for item in extra if item)], home=home)
    except ConfigError as error:
        raise UserError(str(error)) from None


def dag_arguments(config: PipelineConfig) -> dict[str, Any]:
    """DAG settings from ``[airflow]``: schedule, start date, no catchup, one run at a time, retries."""
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
        "default_args": {
            "retries": config.airflow.retries,
            "retry_delay": datetime.timedelta(minutes=config.airflow.retry_delay_minutes),
        },
        "tags": ["taxi", "tfx"],
    }


def _check_metadata_store(config: PipelineConfig) -> None:
    """AirflowDagRunner needs an ML Metadata store from the config; a SQLite file's folder must exist."""
    if config.metadata.mysql_host:
        return
    if not config.metadata.sqlite_path:
        raise UserError("Airflow needs an ML Metadata store: set metadata.mysql_host or metadata.sqlite_path")
    if "://" not in config.metadata.sqlite_path:
        Path(config.metadata.sqlite_path).parent.mkdir(parents=True, exist_ok=True)


def _name_artifacts_per_component(component) -> None:
    """Makes the legacy drivers name output artifacts ``<component>:<key>:<run id>`` instead of ``<key>:<run id>``.

    TFX's Airflow orchestrator still uses the legacy component drivers, which name every output artifact
    ``<output key>:<run id>``; ML Metadata wants names unique per artifact type, so two components with the same
    output key and type in one run (SchemaGen and ImportSchemaGen both output ``schema``) collide and the second
    fails with AlreadyExistsError. LocalDagRunner, Kubeflow and Vertex do not use these drivers.
    """
    base = component.driver_class

    class ComponentScopedNames(base):
        def _prepare_output_artifacts(self, *args, **kwargs):
            outputs = super()._prepare_output_artifacts(*args, **kwargs)
            component_id = kwargs.get("component_info", args[-1] if args else None).component_id
            for artifacts in outputs.values():
                for artifact in artifacts:
                    artifact.name = f"{component_id}:{artifact.name}"
            return outputs

    ComponentScopedNames.__name__ = ComponentScopedNames.__qualname__ = f"ComponentScoped{base.__name__}"
    component.driver_class = ComponentScopedNames


def create_dag(profile: str = "composer", overrides: Sequence[str] = (), home: str | None = None):
    """The whole TFX pipeline as an Airflow DAG (one task per component), via TFX's AirflowDagRunner."""
    config = load_dag_config(profile, overrides, home)
    from runners.environment import prepare_tensorflow

    prepare_tensorflow()
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    from pipeline.pipeline import create_pipeline

    _check_metadata_store(config)
    pipeline = create_pipeline(config)
    for component in pipeline.components:
        _name_artifacts_per_component(component)
    runner = AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=dag_arguments(config)))
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


_TFX_DAG = '''"""The taxi TFX pipeline as an Airflow DAG: one task per component (written by `taxi-pipeline compile`).

Importing it loads TFX (30-60 s): set core.dagbag_import_timeout and core.dag_file_processor_timeout above that.
Add overrides on the Airflow machine with the environment variable TAXI_PIPELINE_OVERRIDES ("a.b=1;c.d=2").
"""

from runners.airflow import create_dag

dag = create_dag(profile={profile!r}, overrides={overrides!r}, home={home!r})
'''

_VERTEX_DAG = '''"""Runs the compiled taxi pipeline on Vertex AI Pipelines on a schedule (from `taxi-pipeline compile`).

Needs no TensorFlow on the Airflow workers: its one task submits {spec_name} (compile it with
`taxi-pipeline compile --runner vertex --output <this folder>/{spec_name}`) and waits for the run.
"""

import os

from runners.airflow import create_vertex_schedule_dag

dag = create_vertex_schedule_dag(
    spec=os.path.join(os.path.dirname(os.path.abspath(__file__)), {spec_name!r}), profile="vertex"
)
'''


def write_dags_folder(
    config: PipelineConfig, output: str | Path, *, profile: str, overrides: Sequence[str], home: str | None = None
) -> list[Path]:
    """Writes the folder to upload to the Composer dags bucket; returns the DAG files written.

    ``config`` is only checked here (the DAG resolves the profile again where it runs, so ``{project}`` becomes
    the dags folder there).
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
    tfx_dag = output / "taxi_pipeline_dag.py"
    tfx_dag.write_text(_TFX_DAG.format(profile=profile, overrides=list(overrides), home=home))
    vertex_dag = output / "taxi_vertex_schedule_dag.py"
    vertex_dag.write_text(_VERTEX_DAG.format(spec_name="taxi_pipeline_vertex.json"))
    return [tfx_dag, vertex_dag]
