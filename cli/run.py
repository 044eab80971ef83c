"""``taxi-pipeline run``: the whole pipeline on this machine, with a live progress display and a summary.

The input is checked before TensorFlow loads (``cli/preflight.py``); then the log flood moves to a file, the
terminal shows one row per component, and the summary at the end is read back from ML Metadata.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_VALIDATION
from cli.options import config_options, load
from pipeline.errors import UserError


@click.command(
    "run",
    short_help="run the whole pipeline on this machine",
    help=(
        "Run the pipeline with LocalDagRunner. Everything lands under --home: metadata.sqlite (ML Metadata), "
        "pipeline_root/ (artifacts), serving/ (pushed models), logs/ and runs/ (config and summary of each run)."
    ),
)
@click.option("--home", default=None, help="Folder for everything of this installation (./pipeline_home).")
@click.option("--data", default=None, help="Folder of CSV files with the taxi columns (the bundled data).")
@click.option("--no-cache", is_flag=True, help="Re-run every component instead of reusing results.")
@config_options(default_profile="local", example="training.train_steps=200")
def run(home: str | None, data: str | None, no_cache: bool, profile: str | None, overrides: tuple[str, ...]) -> int:
    from cli import summary
    from cli.preflight import check_inputs
    from cli.progress import make_display
    from cli.terminal import redirect_output_to_log
    from runners import local
    from runs import active
    from runs.states import FAILED

    if no_cache:
        overrides = (*overrides, "pipeline.enable_cache=false")
    config = load(profile, "local", overrides, home=home, data_root=data)
    check_inputs(config)  # before TensorFlow loads and the screen switches to the progress display
    local.reachable_store(config)
    busy = active.current(config.home)
    if busy is not None:  # said before the screen switches; the runner's lock is what really keeps runs apart
        raise active.HomeBusyError(active.busy_message(Path(config.home), busy))

    run_id = local.new_run_id()
    log_path = Path(config.log_dir) / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    terminal = redirect_output_to_log(log_path)
    display = make_display(terminal, f"taxi pipeline '{config.pipeline.name}' ({config.profile})")
    trackers: list[local.ProgressTracker] = []

    def start(tracker: local.ProgressTracker) -> None:
        trackers.append(tracker)  # it knows which component was running if one fails before MLMD records it
        display.attach(tracker)

    try:
        with display:
            result = local.run_local(
                config, run_id=run_id, log_path=log_path, on_start=start, on_change=display.changed
            )
        failed = [c.node_id for tracker in trackers for c in tracker.components.values() if c.state == FAILED]
        summary.print_summary(terminal, result, log_path, failed_node=failed[0] if failed else None)
        print(f"browse it: taxi-pipeline ui --home {config.home}  (http://127.0.0.1:8080/)", file=terminal)
    except UserError as error:  # another run took the home in the meantime
        print(f"error: {error}", file=terminal, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # stderr now goes to the log, so say it on the terminal. TFX commits each execution's outcome in one
        # MLMD transaction, so the store stays consistent; the next run re-executes the interrupted component.
        print(f"interrupted; the log is {log_path}", file=terminal, flush=True)
        return EXIT_INTERRUPTED
    except Exception:  # a bug of ours: keep the traceback in the log, tell the user where it is
        logging.getLogger(__name__).exception("taxi-pipeline run failed")
        print(f"error: internal failure, the traceback is in {log_path}", file=terminal, flush=True)
        return EXIT_FAILED
    terminal.flush()
    if result.stopped_at_gate:
        return EXIT_VALIDATION
    return EXIT_OK if result.succeeded else EXIT_FAILED
