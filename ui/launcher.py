"""Starting and stopping runs from the explorer: the same ``taxi-pipeline run`` a person types, for this home.

The started command takes the home's run lock like any other run (``runs.active``), so a run started here and
one started from a shell exclude each other. Stop sends the run's process an interrupt, which the command line
handles as Ctrl-C: ML Metadata stays consistent and the next run reuses what had finished.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import PROJECT_DIR, PipelineConfig
from runs import active

# How long the started command may take to load its config, check its input and take the lock.
START_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class Started:
    run_id: str = ""
    error: str = ""  # the command's own one-line error when it did not start (exit 2: a mistake in the input)


def start_run(config: PipelineConfig, overrides: Sequence[str]) -> Started:
    """Starts ``taxi-pipeline run`` for the config's home and profile with ``overrides``; returns once the run
    holds the home's lock (its id is known then) or the command has ended with an error."""
    busy = active.current(config.home)
    if busy is not None:
        return Started(error=active.busy_message(Path(config.home), busy))
    logs = Path(config.log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    output_path = logs / f"started-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    command = [sys.executable, "-m", "cli.main", "run", "--home", config.home, "--profile", config.profile]
    for override in overrides:
        command += ["--set", override]
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_DIR,
            start_new_session=True,  # a Ctrl-C in the explorer's terminal must not stop the run
        )
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        running = active.current(config.home)
        if running is not None and running.pid == process.pid:
            return Started(run_id=running.run_id)
        if process.poll() is not None:
            return Started(error=_first_error(output_path, process.returncode))
        time.sleep(0.1)
    return Started(error=f"the run did not start within {START_TIMEOUT_SECONDS:.0f} s; see {output_path}")


def stop_run(config: PipelineConfig, run_id: str) -> str:
    """Interrupts the run ``run_id`` if it is the one holding the home; returns why not otherwise ("" if sent)."""
    running = active.current(config.home)
    if running is None or running.run_id != run_id:
        return "that run is not running"
    try:
        os.kill(running.pid, signal.SIGINT)
    except ProcessLookupError:
        return "that run has just ended"
    return ""


def _first_error(output_path: Path, returncode: int) -> str:
    lines = output_path.read_text(errors="replace").splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[0].removeprefix("error: ")
    return f"the run ended at once (exit {returncode}); see {output_path}"
