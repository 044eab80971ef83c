"""The server's defaults, in one place for the command line, the app and the batcher."""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501  # TF Serving's REST port, so clients' defaults fit
DEFAULT_POLL_SECONDS = 2.0
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_WORKERS = 4
# Batching of concurrent requests into one TensorFlow call (serving/batching.py).
DEFAULT_MAX_BATCH_ROWS = 128
DEFAULT_BATCH_WAIT_MS = 0.0
