"""The ``compile`` and ``submit`` sub-commands of ``taxi-pipeline``: one pipeline, compiled for Vertex AI Pipelines,
Kubeflow Pipelines or Airflow/Composer, and submitted to Vertex or Kubeflow.

Only argparse is imported at module level; TensorFlow/TFX load inside ``compile`` for Vertex/Kubeflow, and
``submit`` of an already compiled spec loads only the cloud client it needs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.options import add_config_arguments, config_from_arguments
from pipeline.errors import UserError

TARGETS = ("vertex", "kubeflow", "airflow")
DEFAULT_OUTPUT = {
    "vertex": "build/taxi_pipeline_vertex.json",
    "kubeflow": "build/taxi_pipeline_kubeflow.json",
    "airflow": "build/dags",
}
DEFAULT_PROFILE = {"vertex": "vertex", "kubeflow": "kubeflow", "airflow": "composer"}


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default_profile="the runner's own", example="container.image=REGISTRY/IMAGE:TAG")
    parser.add_argument("--home", default=None, help="prefix of every pipeline path, e.g. gs://BUCKET/taxi")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Registers ``compile`` and ``submit`` on the ``taxi-pipeline`` parser."""
    compile_parser = commands.add_parser(
        "compile",
        help="compile the pipeline for Vertex AI, Kubeflow Pipelines or Airflow (offline)",
        description=(
            "vertex/kubeflow: compile with KubeflowV2DagRunner into a pipeline-spec JSON (no cloud call). "
            "airflow: write the DAG folder to upload to the Composer dags bucket."
        ),
    )
    compile_parser.add_argument("--runner", choices=TARGETS, required=True)
    compile_parser.add_argument("--output", default=None, help="file (vertex/kubeflow) or folder (airflow) to write")
    _config_arguments(compile_parser)
    compile_parser.set_defaults(handler=_compile_command)

    submit = commands.add_parser(
        "submit",
        help="submit a compiled pipeline to Vertex AI Pipelines or a Kubeflow Pipelines host",
        description=(
            "Submit the compiled spec (--spec, or compile it now from --profile). Vertex: a PipelineJob, or with "
            "--schedule a Vertex pipeline schedule. Kubeflow: a run (or recurring run) through the KFP API."
        ),
    )
    submit.add_argument("--runner", choices=("vertex", "kubeflow"), required=True)
    submit.add_argument("--spec", default=None, help="compiled spec to submit (default: compile now)")
    submit.add_argument("--project", default=None, help="Google Cloud project (vertex.project)")
    submit.add_argument("--region", default=None, help="Vertex AI region (vertex.region)")
    submit.add_argument("--host", default=None, help="Kubeflow Pipelines API URL (kubeflow.host)")
    submit.add_argument("--experiment", default=None, help="Kubeflow experiment (kubeflow.experiment)")
    submit.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="runtime parameter: data_root, train_args, eval_args, eval_config, or the shorthands train_steps, "
        "eval_steps, min_auc, max_auc_regression (repeatable)",
    )
    submit.add_argument("--label", dest="labels", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--schedule", default=None, metavar="CRON", help='e.g. "0 3 * * *": schedule runs instead')
    submit.add_argument("--wait", action="store_true", help="wait until the run finishes (vertex)")
    submit.add_argument("--no-cache", action="store_true", help="re-run every step instead of reusing results")
    submit.add_argument("--api-endpoint", default=None, help=argparse.SUPPRESS)  # private endpoints, tests
    _config_arguments(submit)
    submit.set_defaults(handler=_submit_command)


def _load(args: argparse.Namespace, runner: str):
    return config_from_arguments(args, DEFAULT_PROFILE[runner], home=args.home)


def _compile_command(args: argparse.Namespace) -> int:
    config = _load(args, args.runner)
    output = Path(args.output or DEFAULT_OUTPUT[args.runner])
    if args.runner == "airflow":
        from runners import airflow

        profile = args.profile or "composer"
        written = airflow.write_dags_folder(config, output, profile=profile, overrides=args.overrides, home=args.home)
        print(f"wrote {', '.join(str(path) for path in written)}")
        print("upload the folder's files to your Composer environment's dags/ folder (see docs/DEPLOY.md)")
        return 0
    from runners import kubeflow

    _quiet_compile()
    path = kubeflow.compile_spec(config, output, target=args.runner)
    print(f"wrote {path} (image {config.container.image})")
    return 0


def _quiet_compile() -> None:
    """TensorFlow's C++ start-up lines are not for the compile's user; warnings stay visible."""
    import logging
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("absl").setLevel(logging.ERROR)


def _spec_for(args: argparse.Namespace, config) -> Path:
    if args.spec:
        return Path(args.spec)
    from runners import kubeflow

    _quiet_compile()
    output = Path(DEFAULT_OUTPUT[args.runner])
    print(f"compiling {output} from profile '{config.profile}' ...", file=sys.stderr)
    return kubeflow.compile_spec(config, output, target=args.runner)


def _submit_command(args: argparse.Namespace) -> int:
    from runners import kubeflow

    config = _load(args, args.runner)
    if args.runner == "vertex":
        from runners import vertex

        project = args.project or config.vertex.project
        if project in vertex.PLACEHOLDER_PROJECTS:
            raise UserError("no Google Cloud project: pass --project PROJECT_ID or set vertex.project in the profile")
        labels = vertex.parse_labels([*config.vertex.labels, *args.labels])
        spec = _spec_for(args, config)
        parameters = kubeflow.parse_parameters(kubeflow.read_spec(spec), args.params)
        try:
            name = vertex.submit(
                spec,
                project=project,
                region=args.region or config.vertex.region,
                parameters=parameters,
                labels=labels,
                service_account=config.vertex.service_account,
                enable_caching=False if args.no_cache else None,
                schedule=args.schedule,
                wait=args.wait,
                api_endpoint=args.api_endpoint,
            )
        except RuntimeError as error:  # PipelineJob.wait() on a failed or cancelled job
            print(f"pipeline job failed: {str(error).splitlines()[0]}", file=sys.stderr)
            return 1
        print(f"created {name}")
        return 0

    host = args.host or config.kubeflow.host
    if not host:
        raise UserError("no Kubeflow Pipelines host: pass --host URL or set kubeflow.host in the profile")
    spec = _spec_for(args, config)
    parameters = kubeflow.parse_parameters(kubeflow.read_spec(spec), args.params)
    run_id = kubeflow.submit_to_kubeflow(
        spec,
        host,
        parameters,
        experiment=args.experiment or config.kubeflow.experiment,
        enable_caching=False if args.no_cache else None,
        schedule=args.schedule,
    )
    print(f"created {'recurring run' if args.schedule else 'run'} {run_id} on {host}")
    return 0
