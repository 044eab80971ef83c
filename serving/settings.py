"""The server's settings: every default and allowed range, in one place for the command line, the app and the batcher.

``taxi-pipeline serve`` makes one option of each field (its default, and its range as click's type, so a bad
value is refused while the command line is parsed and ``--help`` shows the range) and builds ``ServerSettings``
from them; ``create_app`` and the tests take the same object, checked once when it is made.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.errors import UserError


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a number setting may take: ``low <= x <= high``, ``< high`` if ``high_open``, no top if None."""

    low: int
    high: int | None = None
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.high is None or value < self.high:
            return self.low <= value
        return value == self.high and not self.high_open

    def __str__(self) -> str:
        """Written as click writes its ranges (``0<=x<1``, ``x>=1``), so both refusals read alike."""
        if self.high is None:
            return f"x>={self.low}"
        return f"{self.low}<=x{'<' if self.high_open else '<='}{self.high}"


def _setting(default: Any, allowed: Range | None = None) -> Any:
    return dataclasses.field(default=default, metadata={"range": allowed})


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """How ``taxi-pipeline serve`` runs; each field is the command's option of the same name (``--poll-seconds``)."""

    host: str = _setting("127.0.0.1")  # this machine only
    port: int = _setting(8501, Range(0, 65535))  # TF Serving's REST port, so clients' defaults fit
    grpc_port: int = _setting(8500, Range(0, 65535))  # TF Serving's gRPC port; 0: no gRPC
    poll_seconds: float = _setting(2.0, Range(0))  # how often to look for new versions; 0: never
    canary: float = _setting(0.0, Range(0, 1, high_open=True))  # the newest version's share of requests; 0: off
    max_body_bytes: int = _setting(1024 * 1024, Range(1))
    workers: int = _setting(4, Range(1))  # threads calling TensorFlow (and checking large bodies)
    # Batching of concurrent requests into one TensorFlow call (serving/batching.py).
    max_batch_rows: int = _setting(128, Range(1))
    batch_wait_ms: float = _setting(0.0, Range(0, 1000))

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            allowed = allowed_range(field)
            if allowed is not None and value not in allowed:
                raise UserError(f"Invalid value for '{option_name(field)}': {value} is not in the range {allowed}.")


def allowed_range(field: dataclasses.Field[Any]) -> Range | None:
    """The range a field of ``ServerSettings`` must lie in; None for one that is not a number."""
    return field.metadata["range"]


def option_name(field: dataclasses.Field[Any]) -> str:
    """The command line's option for a field of ``ServerSettings``: ``poll_seconds`` is ``--poll-seconds``."""
    return "--" + field.name.replace("_", "-")
