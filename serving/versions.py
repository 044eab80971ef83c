"""Which versions of a model the serving directory holds, read without TensorFlow.

The Pusher writes each version to ``<serving dir>/<model name>/<integer version>/`` and writes ``saved_model.pb``
last, so a version counts as present once that file exists (the rule TF Serving follows too). The command line
asks this before TensorFlow loads, so that a home without a pushed model is refused at once; the repository asks
it on every poll.
"""

from __future__ import annotations

from pathlib import Path

SAVED_MODEL_FILE = "saved_model.pb"


def complete_versions(model_dir: str | Path) -> list[int]:
    """The complete versions in ``model_dir`` (``<serving dir>/<model name>``), newest first; none if it is missing."""
    base = Path(model_dir)
    if not base.is_dir():
        return []
    found = [
        int(entry.name) for entry in base.iterdir() if entry.name.isdigit() and (entry / SAVED_MODEL_FILE).is_file()
    ]
    return sorted(found, reverse=True)
