"""``taxi-pipeline serve``: the pushed models over TF Serving's REST API, on this machine.

Only click and the server's settings (``serving/settings.py``: the options' defaults and ranges) are imported
here; TensorFlow and the web stack load once the command runs, so ``taxi-pipeline --help`` stays instant. The
server itself is ``serving/``.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.exit_codes import EXIT_OK
from cli.options import config_options, load
from pipeline.errors import UserError
from serving.settings import ServerSettings, allowed_range, option_name
from serving.versions import complete_versions

# What the command line says of each field of ServerSettings (click.option's arguments); the defaults and ranges
# are the settings' own.
_OPTIONS: dict[str, dict[str, Any]] = {
    "host": {"help": "Address to bind (this machine only)."},
    "port": {"help": "Port of TF Serving's REST API."},
    "grpc_port": {"help": "Port of TF Serving's gRPC API (PredictionService, ModelService); 0: no gRPC."},
    "poll_seconds": {"help": "How often to look for newly pushed versions, in seconds; 0 turns it off."},
    "canary": {
        "metavar": "SHARE",
        "show_default": False,
        "help": "Send this share (0-1) of requests to the newest version and the rest to the previous one (0: off).",
    },
    "max_body_bytes": {"help": "Larger request bodies are refused with 413 (gRPC messages: RESOURCE_EXHAUSTED)."},
    "workers": {"help": "Threads running predictions."},
    "max_batch_rows": {
        "help": "Concurrent requests share one TensorFlow call up to this many rows in all; 1 gives each its own call."
    },
    "batch_wait_ms": {
        "help": "How long a request may wait for others to share its TensorFlow call when none is running; "
        "0 waits for none."
    },
}


def _settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One option per field of ``ServerSettings``, in the fields' order, with the field's default and range."""
    for field in reversed(dataclasses.fields(ServerSettings)):
        allowed = allowed_range(field)
        if allowed is None:
            kind: Any = type(field.default)
        else:
            number = click.IntRange if isinstance(field.default, int) else click.FloatRange
            kind = number(allowed.low, allowed.high, max_open=allowed.high_open)
        extra = {"show_default": True, **_OPTIONS[field.name]}
        command = click.option(option_name(field), type=kind, default=field.default, **extra)(command)
    return command


def _pinned_labels(values: tuple[str, ...]) -> dict[str, int]:
    """``--label stable=3 --label canary=4`` as {label: version}; click's usage error for a malformed one."""
    pinned: dict[str, int] = {}
    for value in values:
        label, _, version = value.partition("=")
        if not label or not version.isdigit():
            raise click.BadParameter(f"{value!r} is not LABEL=VERSION (e.g. stable=1795463105)", param_hint="'--label'")
        pinned[label] = int(version)
    return pinned


@click.command(
    "serve",
    short_help="serve the pushed models over TF Serving's REST and gRPC APIs on this machine",
    help=(
        "Serve the versions the Pusher wrote to <home>/serving/<model>/ with TensorFlow Serving's REST API "
        "(GET /v1/models/<model>, POST /v1/models/<model>[/versions/<v>]:predict) and its gRPC API "
        "(PredictionService, ModelService). New versions are picked up while serving. See docs/SERVING.md."
    ),
)
@click.option("--home", default=None, help="The pipeline's home folder (./pipeline_home).")
@_settings_options
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="LABEL=VERSION",
    callback=lambda _ctx, _param, values: _pinned_labels(values),
    help="Pin a version label (TF Serving's version_labels), e.g. --label stable=1795463105; repeatable. "
    "The version is kept loaded; unpinned, stable and canary follow the versions served.",
)
@config_options(default_profile="local", example="serving.model_name=taxi")
def serve(
    home: str | None, labels: dict[str, int], profile: str | None, overrides: tuple[str, ...], **options: Any
) -> int:
    settings = ServerSettings(**options)
    config = load(profile, "local", overrides, home=home)
    model_dir = Path(config.serving_model_dir)
    if not complete_versions(model_dir):
        # Refused rather than waited for (TF Serving would wait): a missing or empty folder is almost always the
        # wrong --home, and a server that answers 404 to everything hides that. Once serving, new versions are
        # picked up, and versions that fail to load are reported in the status.
        where = "" if model_dir.is_dir() else " (the folder does not exist)"
        raise UserError(
            f"no pushed models in {model_dir}{where}: run `taxi-pipeline run --home {config.home}` first, "
            "or point --home at the pipeline's home"
        )

    from serving.server import bind

    sock = bind(settings.host, settings.port)  # before the slow model load, so a busy port fails at once
    if settings.grpc_port:
        bind(
            settings.host, settings.grpc_port, "--grpc-port"
        ).close()  # the same check; gRPC binds its own socket later

    from tfx_compat import prepare_tensorflow

    prepare_tensorflow()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("absl").setLevel(logging.WARNING)

    import uvicorn

    from serving.app import create_app
    from serving.repository import ModelRepository
    from serving.server import make_config

    repository = ModelRepository(
        model_dir,
        config.serving.model_name,
        poll_seconds=settings.poll_seconds,
        canary=settings.canary,
        pinned_labels=labels,
    )
    loaded = repository.refresh().newest_first
    app = create_app(repository, settings)
    url = f"http://{settings.host}:{settings.port}/v1/models/{config.serving.model_name}"
    grpc = f" and gRPC on {settings.host}:{settings.grpc_port}" if settings.grpc_port else ""
    if loaded:
        started = f"serving {config.serving.model_name} versions {loaded} from {model_dir} at {url}{grpc}"
    else:  # every version on disk failed to load: the status says why; a new push is picked up
        started = f"no version in {model_dir} loads (see {url} for why); waiting for a new one, 404 meanwhile"
    print(f"{started} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    uvicorn.Server(make_config(app, settings.host, settings.port)).run(sockets=[sock])
    return EXIT_OK
