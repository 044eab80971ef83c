"""The live progress display of a local run: one row per component, with its state and elapsed time.

``runners.local.ProgressTracker`` turns LocalDagRunner's log into state changes; ``LiveTable`` (a terminal) or
``PlainLines`` (a pipe, CI) shows them. The full log goes to a file.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from runners.local import ComponentProgress, ProgressTracker
from runs.states import CACHED, DONE, FAILED, NOT_RUN, RUNNING, WAITING

STATE_STYLES = {
    WAITING: "dim",
    RUNNING: "bold cyan",
    CACHED: "green",
    DONE: "bold green",
    FAILED: "bold red",
    NOT_RUN: "dim",
}


def component_table(rows: Iterable[tuple[str, str, float | None]], title: str | None = None) -> Table:
    """The table of components both the live display and the end-of-run summary show: name, state, seconds.

    A running component's name gets a spinner (it only turns while the table is redrawn live).
    """
    table = Table(title=title, show_header=True, header_style="bold", box=None, padding=(0, 2))
    table.add_column("component")
    table.add_column("state")
    table.add_column("time", justify="right")
    for node_id, state, seconds in rows:
        name: Text | Spinner = Text(node_id)
        if state == RUNNING:
            name = Spinner("dots", text=Text(node_id, style="bold"))
        elapsed = "" if seconds is None else f"{seconds:.1f}s"
        table.add_row(name, Text(state, style=STATE_STYLES.get(state, "")), elapsed)
    return table


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

    def changed(self, _component: ComponentProgress) -> None:
        """Redraws are periodic; nothing to do per event."""

    def _render(self) -> Group:
        elapsed = time.monotonic() - self._started
        header = Text.assemble((self._title, "bold"), f"  {elapsed:6.1f}s")
        parts: list = [header]
        if self._status:
            parts.append(Spinner("dots", text=Text(self._status, style="cyan")))
        if self._tracker is not None:
            components = self._tracker.components.values()
            parts.append(component_table((c.node_id, c.state, c.elapsed) for c in components))
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

    def changed(self, component: ComponentProgress) -> None:
        suffix = f" ({component.elapsed:.1f}s)" if component.state == DONE else ""
        self._console.print(
            f"[{time.monotonic() - self._started:6.1f}s] {component.node_id}: {component.state}{suffix}"
        )


def make_display(stream: TextIO, title: str) -> LiveTable | PlainLines:
    """A live table on a terminal, plain lines otherwise."""
    console = Console(file=stream, highlight=False)
    return LiveTable(console, title) if console.is_terminal else PlainLines(console, title)
