"""The ``serve`` sub-command of ``taxi-pipeline``: serve the pushed models over TF Serving's REST API, locally.

Only argparse and the config are imported here; TensorFlow, FastAPI and uvicorn load once the command runs, so
``taxi-pipeline --help`` stays instant. The server itself lives in ``serving.app`` (HTTP),
``serving.repository`` (versions on disk, pickup, canary) and ``serving.formats`` (request formats).
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

from cli.options import add_config_arguments, config_from_arguments
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


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Registers ``serve`` on the ``taxi-pipeline`` parser."""
    serve = commands.add_parser(
        "serve",
        help="serve the pushed models over TF Serving's REST API on this machine",
        description=(
            "Serve the versions the Pusher wrote to <home>/serving/<model>/ with TensorFlow Serving's REST API "
            "(GET /v1/models/<model>, POST /v1/models/<model>[/versions/<v>]:predict). New versions are picked up "
            "while serving. See docs/SERVING.md."
        ),
    )
    serve.add_argument("--home", default=None, help="the pipeline's home folder (./pipeline_home)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind ({DEFAULT_HOST}: this machine only)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on ({DEFAULT_PORT})")
    serve.add_argument(
        "--poll-seconds",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help=f"how often to look for newly pushed versions, in seconds; 0 turns it off ({DEFAULT_POLL_SECONDS:g})",
    )
    serve.add_argument(
        "--canary",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="send this share (0-1) of requests to the newest version and the rest to the previous one (0: off)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"larger request bodies are refused with 413 ({DEFAULT_MAX_BODY_BYTES})",
    )
    serve.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help=f"threads running predictions ({DEFAULT_WORKERS})"
    )
    serve.add_argument(
        "--max-batch-rows",
        type=int,
        default=DEFAULT_MAX_BATCH_ROWS,
        help=(
            "concurrent requests share one TensorFlow call up to this many rows in all; 1 gives each request its "
            f"own call ({DEFAULT_MAX_BATCH_ROWS})"
        ),
    )
    serve.add_argument(
        "--batch-wait-ms",
        type=float,
        default=DEFAULT_BATCH_WAIT_MS,
        help=(
            "how long a request may wait for others to share its TensorFlow call when none is running; "
            f"0 waits for none ({DEFAULT_BATCH_WAIT_MS:g})"
        ),
    )
    add_config_arguments(serve, default_profile="local", example="serving.model_name=taxi")
    serve.set_defaults(handler=_serve_command)


def _serve_command(args: argparse.Namespace) -> int:
    if not 0 <= args.canary < 1:
        raise UserError(f"--canary must be a share from 0 to below 1 (e.g. 0.1), got {args.canary:g}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be from 0 to 65535, got {args.port}")
    if args.poll_seconds < 0 or args.max_body_bytes <= 0 or args.workers <= 0 or args.max_batch_rows <= 0:
        raise UserError(
            "--poll-seconds must be 0 or more; --max-body-bytes, --workers and --max-batch-rows must be positive"
        )
    if not 0 <= args.batch_wait_ms <= 1000:
        raise UserError(f"--batch-wait-ms must be from 0 to 1000, got {args.batch_wait_ms:g}")
    config = config_from_arguments(args, "local", home=args.home)
    model_dir = Path(config.serving_model_dir)
    if not model_dir.is_dir():
        raise UserError(
            f"no pushed models in {model_dir}: run `taxi-pipeline run --home {config.home}` first, "
            "or point --home at the pipeline's home"
        )

    sock = _bind(args.host, args.port)  # before the slow model load, so a busy port fails at once

    from tfx_compat import prepare_tensorflow

    prepare_tensorflow()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("absl").setLevel(logging.WARNING)

    import uvicorn

    from serving.app import create_app, make_config
    from serving.repository import ModelRepository

    repository = ModelRepository(
        model_dir, config.serving.model_name, poll_seconds=args.poll_seconds, canary=args.canary
    )
    loaded = repository.refresh().newest_first
    if not loaded:
        logging.warning(
            "no version of %s could be loaded yet from %s; waiting for one", config.serving.model_name, model_dir
        )
    app = create_app(
        repository,
        max_body_bytes=args.max_body_bytes,
        workers=args.workers,
        max_batch_rows=args.max_batch_rows,
        batch_wait_s=args.batch_wait_ms / 1000,
    )
    print(
        f"serving {config.serving.model_name} versions {loaded} from {model_dir} "
        f"at http://{args.host}:{args.port}/v1/models/{config.serving.model_name} (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(make_config(app, args.host, args.port)).run(sockets=[sock])
    return 0


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on such sockets, and without
        # it Nagle's algorithm and delayed ACKs add 40 ms to every answer.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror} (pick another --port or --host)") from None
    return sock
