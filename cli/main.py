"""``taxi-pipeline``: the one command line users type.

One click group; each command lives in a module of its own (``run``, ``deploy``, ``serve``) and imports what it
needs only once it runs, so ``--help`` and input mistakes answer at once, and TensorFlow is imported only when a
run, a compile or the server really starts. User mistakes print one line (``error: ...``) and exit 2, never a
traceback.

Exit codes: 0 the run finished (blessed or not), 1 a component failed, 2 a user error, 3 the data failed
validation and the run stopped at the gate, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from cli import deploy, run, serve, ui
from cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_VALIDATION
from pipeline.errors import UserError


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
    help="The TFX Chicago taxi pipeline: run it locally, compile it for Vertex AI / Kubeflow / Airflow.",
)
def taxi_pipeline() -> None:
    """The command group; every command is added below."""


for command in (run.run, deploy.compile_pipeline, deploy.submit, serve.serve, ui.ui):
    taxi_pipeline.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command ``argv`` names and returns its exit code (the tests call this)."""
    try:
        arguments = list(argv) if argv is not None else None
        code = taxi_pipeline.main(args=arguments, prog_name="taxi-pipeline", standalone_mode=False)
    except click.ClickException as error:  # a malformed command line, in one line like every user mistake
        hint = f" (see {error.ctx.command_path} --help)" if getattr(error, "ctx", None) else ""
        print(f"error: {' '.join(error.format_message().split())}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, click.Abort):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if code is None else int(code)


__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "EXIT_VALIDATION", "main", "console_main"]


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
