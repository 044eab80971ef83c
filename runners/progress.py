"""The live progress display of a local run: one row per component, with its state and elapsed time.

LocalDagRunner reports progress only through its log ("Component X is running.", "A cached execution N is
used.", "Component X is finished."). ``ProgressTracker`` is a logging handler that turns those lines into state
changes; ``LiveTable`` (a terminal) or ``PlainLines`` (a pipe, CI) shows them. The full log goes to a file.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

WAITING, RUNNING, CACHED, DONE, FAILED, NOT_RUN = "waiting", "running", "cached", "done", "failed", "not run"
STATE_STYLES = {
    WAITING: "dim",
    RUNNING: "bold cyan",
    CACHED: "green",
    DONE: "bold green",
    FAILED: "bold red",
    NOT_RUN: "dim",
}

_RUNNING = re.compile(r"^Component (\S+) is running\.$")
_FINISHED = re.compile(r"^Component (\S+) is finished\.$")
_CACHED = re.compile(r"^A cached execution \d+ is used\.$")


@dataclasses.dataclass
class ComponentProgress:
    node_id: str
    state: str = WAITING
    started: float | None = None
    ended: float | None = None

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.monotonic()) - self.started


class ProgressTracker(logging.Handler):
    """Follows LocalDagRunner's log messages and keeps each component's state; calls ``on_change`` on each."""

    def __init__(self, node_ids: Sequence[str], on_change: Callable[[ComponentProgress], None] = lambda _: None):
        super().__init__(level=logging.INFO)
        self.components = {node_id: ComponentProgress(node_id) for node_id in node_ids}
        self._current: ComponentProgress | None = None
        self._on_change = on_change
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed third-party log call must not break the run
            return
        with self._lock:
            if match := _RUNNING.match(message):
                component = self.components.setdefault(match[1], ComponentProgress(match[1]))
                component.state, component.started = RUNNING, time.monotonic()
                self._current = component
            elif _CACHED.match(message) and self._current is not None:
                self._current.state = CACHED
                component = self._current
            elif match := _FINISHED.match(message):
                component = self.components.setdefault(match[1], ComponentProgress(match[1]))
                component.ended = time.monotonic()
                self._current = None
                if component.state != RUNNING:
                    return  # already reported as cached
                component.state = DONE
            else:
                return
        self._on_change(component)

    def finish(self, failed: bool) -> None:
        """Marks the component that was running as failed (if the run failed) and the rest as not run."""
        with self._lock:
            for component in self.components.values():
                if component.state == RUNNING:
                    component.state = FAILED if failed else DONE
                    component.ended = time.monotonic()
                elif component.state == WAITING:
                    component.state = NOT_RUN


def _format_elapsed(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:6.1f}s"


class LiveTable:
    """A table redrawn in place on a terminal, with a spinner on the running component."""

    def __init__(self, console: Console, title: str):
        self._console = console
        self._title = title
        self._status = "loading TensorFlow and TFX"
        self._tracker: ProgressTracker | None = None
        self._started = time.monotonic()
        self._live = Live(
            self._render(), console=console, refresh_per_second=4, transient=False, get_renderable=self._render
        )

    def __enter__(self) -> LiveTable:
        self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.__exit__(*exc_info)

    def attach(self, tracker: ProgressTracker) -> None:
        self._tracker = tracker
        self._status = ""

    def status(self, text: str) -> None:
        self._status = text

    def changed(self, _component: ComponentProgress) -> None:
        """Redraws are periodic; nothing to do per event."""

    def _render(self) -> Group:
        elapsed = time.monotonic() - self._started
        header = Text.assemble((self._title, "bold"), f"  {elapsed:6.1f}s")
        parts: list = [header]
        if self._status:
            parts.append(Spinner("dots", text=Text(self._status, style="cyan")))
        if self._tracker is not None:
            table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
            table.add_column("component")
            table.add_column("state")
            table.add_column("time", justify="right")
            for component in self._tracker.components.values():
                state = Text(component.state, style=STATE_STYLES[component.state])
                name: Text | Spinner = Text(component.node_id)
                if component.state == RUNNING:
                    name = Spinner("dots", text=Text(component.node_id, style="bold"))
                table.add_row(name, state, _format_elapsed(component.elapsed))
            parts.append(table)
        return Group(*parts)


class PlainLines:
    """One line per state change, for logs and CI where redrawing a table would only add noise."""

    def __init__(self, console: Console, title: str):
        self._console = console
        self._console.print(f"{title}: loading TensorFlow and TFX ...")
        self._started = time.monotonic()

    def __enter__(self) -> PlainLines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def attach(self, tracker: ProgressTracker) -> None:
        self._console.print(f"[{time.monotonic() - self._started:6.1f}s] running {len(tracker.components)} components")

    def status(self, text: str) -> None:
        self._console.print(f"[{time.monotonic() - self._started:6.1f}s] {text}")

    def changed(self, component: ComponentProgress) -> None:
        suffix = f" ({component.elapsed:.1f}s)" if component.state == DONE else ""
        self._console.print(
            f"[{time.monotonic() - self._started:6.1f}s] {component.node_id}: {component.state}{suffix}"
        )


def make_display(stream: TextIO, title: str) -> LiveTable | PlainLines:
    """A live table on a terminal, plain lines otherwise."""
    console = Console(file=stream, highlight=False)
    return LiveTable(console, title) if console.is_terminal else PlainLines(console, title)


def console_for(stream: TextIO) -> Console:
    return Console(file=stream, highlight=False)
