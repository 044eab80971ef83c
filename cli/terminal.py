"""Keeping the terminal readable during a run: TensorFlow's, Beam's and TFX's log flood goes to a file."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TextIO


def redirect_output_to_log(log_path: Path) -> TextIO:
    """Sends everything written to stdout/stderr from now on, by Python or by C++ libraries, to ``log_path``.

    Returns a stream on the original standard output for the progress display and the summary. The redirection
    lasts until the process exits, on purpose: TensorFlow prints a harmless ``atomic_function.__del__``
    TypeError at interpreter exit, which belongs in the log, not on the user's screen. Meant for the command
    line's own process only.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
    log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process's lifetime
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    return terminal
