"""``taxi-pipeline``: the one command line users type.

Sub-commands load only what they need, so ``--help`` and input mistakes answer at once; TensorFlow is imported
only once a run really starts. User mistakes print one line (``error: ...``) and exit 2, never a traceback.

Exit codes: 0 the run finished (blessed or not), 1 a component failed, 2 a user error, 3 the data failed
validation and the run stopped at the gate, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from cli import deploy, serve
from cli.options import add_config_arguments, config_from_arguments
from pipeline.errors import UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_VALIDATION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taxi-pipeline",
        description="The TFX Chicago taxi pipeline: run it locally, compile it for Vertex AI / Kubeflow / Airflow.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the whole pipeline on this machine",
        description=(
            "Run the pipeline with LocalDagRunner. Everything lands under --home: metadata.sqlite (ML Metadata), "
            "pipeline_root/ (artifacts), serving/ (pushed models), logs/ and runs/ (config and summary of each run)."
        ),
    )
    run.add_argument("--home", default=None, help="folder for everything of this installation (./pipeline_home)")
    run.add_argument("--data", default=None, help="folder of CSV files with the taxi columns (the bundled data)")
    run.add_argument("--no-cache", action="store_true", help="re-run every component instead of reusing results")
    add_config_arguments(run, default_profile="local", example="training.train_steps=200")
    run.set_defaults(handler=_run_command)
    deploy.add_commands(commands)  # compile, submit (Vertex AI, Kubeflow, Airflow)
    serve.add_commands(commands)  # serve (local TF Serving-compatible REST server)
    return parser


def _run_command(args: argparse.Namespace) -> int:
    from cli import summary
    from cli.preflight import check_inputs
    from cli.progress import make_display
    from cli.terminal import redirect_output_to_log
    from runners import local

    if args.no_cache:
        args.overrides.append("pipeline.enable_cache=false")
    config = config_from_arguments(args, "local", home=args.home, data_root=args.data)
    check_inputs(config)  # before TensorFlow loads and the screen switches to the progress display

    log_path = Path(config.log_dir) / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    terminal = redirect_output_to_log(log_path)
    display = make_display(terminal, f"taxi pipeline '{config.pipeline.name}' ({config.profile})")
    try:
        with display:
            result = local.run_local(config, on_start=display.attach, on_change=display.changed)
        summary.print_summary(terminal, result, log_path)
    except KeyboardInterrupt:
        # stderr now goes to the log, so say it on the terminal. TFX commits each execution's outcome in one
        # MLMD transaction, so the store stays consistent; the next run re-executes the interrupted component.
        print(f"interrupted; the log is {log_path}", file=terminal, flush=True)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001 - a bug of ours: keep the traceback in the log, tell the user where it is
        logging.getLogger(__name__).exception("taxi-pipeline run failed")
        print(f"error: internal failure, the traceback is in {log_path}", file=terminal, flush=True)
        return EXIT_FAILED
    terminal.flush()
    if result.stopped_at_gate:
        return EXIT_VALIDATION
    return EXIT_OK if result.succeeded else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def console_main() -> NoReturn:
    """The ``taxi-pipeline`` console script: ``main``, then an immediate exit with its code.

    After a run, the interpreter's own shutdown tears down TensorFlow, Beam and gRPC state and threads, which
    takes 2-4 s on 2 cores and adds nothing: whatever the command wrote is flushed here, and ML Metadata commits
    each execution in its own transaction as the run goes. So the process leaves with ``os._exit``. Tests call
    ``main`` and get its return value as usual.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    console_main()
