"""``taxi-pipeline compile`` and ``submit``: one pipeline, compiled for Vertex AI Pipelines, Kubeflow Pipelines or
Airflow/Composer, and submitted to Vertex or Kubeflow.

TensorFlow/TFX load inside ``compile`` for Vertex/Kubeflow only; ``submit`` of an already compiled spec loads only
the cloud client it needs, so it takes seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.exit_codes import EXIT_FAILED, EXIT_OK
from cli.options import config_options, load

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig

TARGETS = ("vertex", "kubeflow", "airflow")
DEFAULT_OUTPUT = {
    "vertex": "build/taxi_pipeline_vertex.json",
    "kubeflow": "build/taxi_pipeline_kubeflow.json",
    "airflow": "build/dags",
}
DEFAULT_PROFILE = {"vertex": "vertex", "kubeflow": "kubeflow", "airflow": "composer"}

_remote_config = config_options(default_profile="the runner's own", example="container.image=REGISTRY/IMAGE:TAG")
_home = click.option("--home", default=None, help="Prefix of every pipeline path, e.g. gs://BUCKET/taxi.")


@click.command(
    "compile",
    short_help="compile the pipeline for Vertex AI, Kubeflow Pipelines or Airflow (offline)",
    help=(
        "vertex/kubeflow: compile with KubeflowV2DagRunner into a pipeline-spec JSON (no cloud call). "
        "airflow: write the DAG folder to upload to the Composer dags bucket."
    ),
)
@click.option("--runner", type=click.Choice(TARGETS), required=True)
@click.option("--output", default=None, help="File (vertex/kubeflow) or folder (airflow) to write.")
@_remote_config
@_home
def compile_pipeline(
    runner: str, output: str | None, profile: str | None, overrides: tuple[str, ...], home: str | None
) -> int:
    config = load(profile, DEFAULT_PROFILE[runner], overrides, home=home)
    target = Path(output or DEFAULT_OUTPUT[runner])
    if runner == "airflow":
        from runners import airflow

        written = airflow.write_dags_folder(
            config, target, profile=profile or DEFAULT_PROFILE[runner], overrides=overrides, home=home
        )
        print(f"wrote {', '.join(str(path) for path in written)}")
        print("upload the folder's files to your Composer environment's dags/ folder (see docs/DEPLOY.md)")
        return EXIT_OK
    path = _compile_spec(config, runner, target)
    print(f"wrote {path} (image {config.container.image})")
    return EXIT_OK


def _compile_spec(config: PipelineConfig, runner: str, output: Path) -> Path:
    """Compiles the spec quietly: TensorFlow's C++ start-up lines are not for this command's user."""
    import logging
    import os
    import warnings

    from runners import kubeflow

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return kubeflow.compile_spec(config, output, target=runner)


@click.command(
    "submit",
    short_help="submit a compiled pipeline to Vertex AI Pipelines or a Kubeflow Pipelines host",
    help=(
        "Submit the compiled spec (--spec, or compile it now from --profile). Vertex: a PipelineJob, or with "
        "--schedule a Vertex pipeline schedule. Kubeflow: a run (or recurring run) through the KFP API."
    ),
)
@click.option("--runner", type=click.Choice(("vertex", "kubeflow")), required=True)
@click.option("--spec", default=None, help="Compiled spec to submit (default: compile now).")
@click.option("--project", default=None, help="Google Cloud project (vertex.project).")
@click.option("--region", default=None, help="Vertex AI region (vertex.region).")
@click.option("--host", default=None, help="Kubeflow Pipelines API URL (kubeflow.host).")
@click.option("--experiment", default=None, help="Kubeflow experiment (kubeflow.experiment).")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Runtime parameter: data_root, train_args, eval_args, eval_config, or the shorthands train_steps, "
    "eval_steps, min_auc, max_auc_regression (repeatable).",
)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE")
@click.option("--schedule", default=None, metavar="CRON", help='E.g. "0 3 * * *": schedule runs instead.')
@click.option("--wait", is_flag=True, help="Wait until the run finishes (vertex).")
@click.option("--no-cache", is_flag=True, help="Re-run every step instead of reusing results.")
@click.option("--api-endpoint", default=None, hidden=True)  # private endpoints, tests
@_remote_config
@_home
def submit(
    runner: str,
    spec: str | None,
    project: str | None,
    region: str | None,
    host: str | None,
    experiment: str | None,
    params: tuple[str, ...],
    labels: tuple[str, ...],
    schedule: str | None,
    wait: bool,
    no_cache: bool,
    api_endpoint: str | None,
    profile: str | None,
    overrides: tuple[str, ...],
    home: str | None,
) -> int:
    from runners import kubeflow

    config = load(profile, DEFAULT_PROFILE[runner], overrides, home=home)
    enable_caching = False if no_cache else None
    if runner == "vertex":
        from runners import vertex

        project = project or config.vertex.project
        vertex.check_project(project)  # before a compile that takes half a minute
        all_labels = vertex.parse_labels([*config.vertex.labels, *labels])
        spec_path = _spec_for(spec, runner, config)
        try:
            name = vertex.submit(
                spec_path,
                project=project,
                region=region or config.vertex.region,
                parameters=kubeflow.parse_parameters(kubeflow.read_spec(spec_path), list(params)),
                labels=all_labels,
                service_account=config.vertex.service_account,
                enable_caching=enable_caching,
                schedule=schedule,
                wait=wait,
                api_endpoint=api_endpoint,
            )
        except RuntimeError as error:  # PipelineJob.wait() on a failed or cancelled job
            print(f"pipeline job failed: {str(error).splitlines()[0]}", file=sys.stderr)
            return EXIT_FAILED
        print(f"created {name}")
        return EXIT_OK

    host = host or config.kubeflow.host
    kubeflow.check_host(host)
    spec_path = _spec_for(spec, runner, config)
    run_id = kubeflow.submit_to_kubeflow(
        spec_path,
        host,
        kubeflow.parse_parameters(kubeflow.read_spec(spec_path), list(params)),
        experiment=experiment or config.kubeflow.experiment,
        enable_caching=enable_caching,
        schedule=schedule,
    )
    print(f"created {'recurring run' if schedule else 'run'} {run_id} on {host}")
    return EXIT_OK


def _spec_for(spec: str | None, runner: str, config: PipelineConfig) -> Path:
    """The spec to submit: the one given, or one compiled now from the profile."""
    if spec:
        return Path(spec)
    output = Path(DEFAULT_OUTPUT[runner])
    print(f"compiling {output} from profile '{config.profile}' ...", file=sys.stderr)
    return _compile_spec(config, runner, output)
