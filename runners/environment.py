"""Process set-up for running TensorFlow/TFX quietly: environment variables and moving the log flood to a file.

These are the only environment variables the application sets, and it sets them before TensorFlow is imported.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TextIO


def prepare_tensorflow() -> None:
    """Settings TensorFlow reads at import time.

    - TF_USE_LEGACY_KERAS: TFX 1.16 and TensorFlow Transform build Keras 2 (tf_keras) models; TensorFlow 2.16
      would otherwise hand ``tf.keras`` to Keras 3.
    - TF_CPP_MIN_LOG_LEVEL: keep TensorFlow's C++ start-up chatter out of the terminal (it also goes to the log).
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


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
