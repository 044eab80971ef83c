"""``taxi-pipeline ui``: the run explorer over this home's ML Metadata store, in the browser.

Only click is imported here; the web app (Starlette, Jinja2, the reading layer) loads once the command runs, and
TensorFlow only when a page that needs it is first opened.
"""

from __future__ import annotations

import sys

import click

from cli.exit_codes import EXIT_OK
from cli.options import config_options, load
from pipeline.errors import UserError


@click.command(
    "ui",
    short_help="browse runs: graphs, parameters, artifacts, models, lineage; start new runs",
    help=(
        "Serve the run explorer for the pipeline home (--home, or the profile's home): every run's graph and "
        "state, each component's parameters, inputs and outputs, the models' metrics and curves, lineage, and "
        "a form that starts a new run. Read-only on ML Metadata. Binds 127.0.0.1 unless told otherwise; on any "
        "other address starting and stopping runs needs --run-token."
    ),
)
@click.option("--home", default=None, help="The pipeline's home folder (./pipeline_home).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--run-token",
    default="",
    envvar="TAXI_PIPELINE_RUN_TOKEN",
    help="On an address other than this machine's, allow starting and stopping runs to whoever gives this token.",
)
@config_options(default_profile="local", example="pipeline.name=taxi")
def ui(home: str | None, host: str, port: int, run_token: str, profile: str | None, overrides: tuple[str, ...]) -> int:
    config = load(profile, "local", overrides, home=home)

    from serving.server import bind

    sock = bind(host, port)  # a busy port is said before anything loads
    import uvicorn

    from runs.store import reader_for
    from ui.app import create_app
    from ui.settings import UiSettings

    settings = UiSettings(config=config, host=host, port=sock.getsockname()[1], run_token=run_token)
    try:
        app = create_app(settings, reader_for(config))
    except UserError:
        sock.close()
        raise
    shown = f"[{host}]" if ":" in host else host
    print(f"run explorer for {config.home} at http://{shown}:{settings.port}/ (Ctrl-C to stop)", file=sys.stderr)
    if not settings.loopback and not run_token:
        print("starting and stopping runs is off on this address (no --run-token)", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning"))
    server.run(sockets=[sock])
    return EXIT_OK
