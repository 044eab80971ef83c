"""The run in progress in a pipeline home: one lock that serialises runs, and what it says about the run.

``taxi-pipeline run`` (and so the run explorer's New run form, which starts that same command) holds an exclusive
``flock`` on ``<home>/run.lock`` for as long as it runs. A second run on the same home is refused at once with a
one-line error that names the first; the kernel drops the lock when the process ends, however it ends (Ctrl-C,
kill -9), so a crashed run never leaves the home locked. The file's content says which run holds it: process id,
run id, start time, log file and the pipeline's nodes, which the run explorer draws before ML Metadata has any.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

LOCK_FILE = "run.lock"


@dataclasses.dataclass(frozen=True)
class ActiveRun:
    """What the lock file says of the run holding it."""

    pid: int
    run_id: str
    started: float  # seconds since the epoch
    log_path: str = ""
    # The pipeline's nodes in order, each with the nodes it waits for; empty until the pipeline is built.
    nodes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    config_json: str = ""  # the resolved config the run uses (ML Metadata gets it when the run ends)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ActiveRun:
        values: dict[str, Any] = json.loads(text)
        values["nodes"] = tuple((node, tuple(upstream)) for node, upstream in values.get("nodes", ()))
        return cls(**values)


class HomeBusyError(UserError):
    """Another run holds the home."""


class RunLock:
    """The held lock of one run; ``update`` rewrites what the file says about the run."""

    def __init__(self, handle: int, run: ActiveRun):
        self._handle = handle
        self.run = run

    def update(self, **changes: Any) -> None:
        self.run = dataclasses.replace(self.run, **changes)
        os.ftruncate(self._handle, 0)
        os.pwrite(self._handle, self.run.to_json().encode(), 0)


@contextlib.contextmanager
def hold(home: str | Path, run_id: str, log_path: str | Path = "", config_json: str = "") -> Iterator[RunLock]:
    """Holds the home's run lock for the ``with`` block, or raises HomeBusyError naming the run that holds it."""
    path = Path(home) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HomeBusyError(busy_message(Path(home), _parse(os.pread(handle, 1 << 20, 0)))) from None
        lock = RunLock(handle, ActiveRun(os.getpid(), run_id, time.time(), str(log_path), config_json=config_json))
        lock.update()
        try:
            yield lock
        finally:
            os.ftruncate(handle, 0)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def current(home: str | Path) -> ActiveRun | None:
    """The run holding ``home``'s lock now, or None when no run is in progress."""
    path = Path(home) / LOCK_FILE
    try:
        handle = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a run is in progress
            return _parse(os.pread(handle, 1 << 20, 0))
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
    finally:
        os.close(handle)


def _parse(data: bytes) -> ActiveRun | None:
    try:
        return ActiveRun.from_json(data.decode())
    except (ValueError, TypeError, KeyError):
        return None  # being written at this very moment, or empty


def busy_message(home: Path, run: ActiveRun | None) -> str:
    """The one line that refuses a second run: which run holds the home, and what to do."""
    if run is None:
        return f"another run is in progress in {home}; wait for it to finish, or stop it"
    started = time.strftime("%H:%M:%S", time.localtime(run.started))
    return (
        f"another run is in progress in {home} (run {run.run_id}, process {run.pid}, started {started}); "
        "wait for it to finish, or stop it"
    )
