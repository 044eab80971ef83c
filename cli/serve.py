"""``taxi-pipeline serve``: the pushed models over TF Serving's REST API, on this machine.

Only click and the server's defaults are imported here; TensorFlow and the web stack load once the command runs,
so ``taxi-pipeline --help`` stays instant. The server itself is ``serving/``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from cli.exit_codes import EXIT_OK
from cli.options import config_options, load
from pipeline.errors import UserError
from serving.settings import (
    DEFAULT_BATCH_WAIT_MS,
    DEFAULT_HOST,
    DEFAULT_MAX_BATCH_ROWS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_POLL_SECONDS,
    DEFAULT_PORT,
    DEFAULT_WORKERS,
)


@click.command(
    "serve",
    short_help="serve the pushed models over TF Serving's REST API on this machine",
    help=(
        "Serve the versions the Pusher wrote to <home>/serving/<model>/ with TensorFlow Serving's REST API "
        "(GET /v1/models/<model>, POST /v1/models/<model>[/versions/<v>]:predict). New versions are picked up "
        "while serving. See docs/SERVING.md."
    ),
)
@click.option("--home", default=None, help="The pipeline's home folder (./pipeline_home).")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind (this machine only).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0),
    default=DEFAULT_POLL_SECONDS,
    show_default=True,
    help="How often to look for newly pushed versions, in seconds; 0 turns it off.",
)
@click.option(
    "--canary",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    metavar="SHARE",
    help="Send this share (0-1) of requests to the newest version and the rest to the previous one (0: off).",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    help="Larger request bodies are refused with 413.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Threads running predictions.",
)
@click.option(
    "--max-batch-rows",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_BATCH_ROWS,
    show_default=True,
    help="Concurrent requests share one TensorFlow call up to this many rows in all; 1 gives each its own call.",
)
@click.option(
    "--batch-wait-ms",
    type=click.FloatRange(0, 1000),
    default=DEFAULT_BATCH_WAIT_MS,
    show_default=True,
    help="How long a request may wait for others to share its TensorFlow call when none is running; 0 waits for none.",
)
@config_options(default_profile="local", example="serving.model_name=taxi")
def serve(
    home: str | None,
    host: str,
    port: int,
    poll_seconds: float,
    canary: float,
    max_body_bytes: int,
    workers: int,
    max_batch_rows: int,
    batch_wait_ms: float,
    profile: str | None,
    overrides: tuple[str, ...],
) -> int:
    config = load(profile, "local", overrides, home=home)
    model_dir = Path(config.serving_model_dir)
    if not model_dir.is_dir():
        raise UserError(
            f"no pushed models in {model_dir}: run `taxi-pipeline run --home {config.home}` first, "
            "or point --home at the pipeline's home"
        )

    from serving.server import bind

    sock = bind(host, port)  # before the slow model load, so a busy port fails at once

    from tfx_compat import prepare_tensorflow

    prepare_tensorflow()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("absl").setLevel(logging.WARNING)

    import uvicorn

    from serving.app import create_app
    from serving.repository import ModelRepository
    from serving.server import make_config

    repository = ModelRepository(model_dir, config.serving.model_name, poll_seconds=poll_seconds, canary=canary)
    loaded = repository.refresh().newest_first
    if not loaded:
        logging.warning(
            "no version of %s could be loaded yet from %s; waiting for one", config.serving.model_name, model_dir
        )
    app = create_app(
        repository,
        max_body_bytes=max_body_bytes,
        workers=workers,
        max_batch_rows=max_batch_rows,
        batch_wait_s=batch_wait_ms / 1000,
    )
    print(
        f"serving {config.serving.model_name} versions {loaded} from {model_dir} "
        f"at http://{host}:{port}/v1/models/{config.serving.model_name} (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(make_config(app, host, port)).run(sockets=[sock])
    return EXIT_OK
