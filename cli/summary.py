"""The end-of-run summary: each component's outcome and time, every candidate's evaluation next to the previously
pushed model, which candidate won and why, and where the winner was pushed."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.progress import component_table
from pipeline import names
from runners.local import LocalRun
from runs.report import RunReport
from runs.states import FAILED

# Metrics shown, in order, with the names TFMA records them under.
SHOWN_METRICS = (
    ("auc", "AUC"),
    ("binary_accuracy", "accuracy"),
    ("calibration", "calibration"),
    ("example_count", "examples"),
)


def cause_of(text: str, limit: int = 200) -> str:
    """The useful sentence of an error message: Python puts it last, TFX and Beam wrap it in longer text (a
    traceback, or a trailing ``[while running '<step>']`` line), and some errors run to kilobytes of one line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    while len(lines) > 1 and lines[-1].startswith("[while running"):
        lines.pop()
    cause = lines[-1] if lines else ""
    return cause if len(cause) <= limit else cause[: limit - 3].rstrip() + "..."


def exception_cause(error: BaseException) -> str:
    """``Type: message`` of an exception, its message shortened by ``cause_of``."""
    message = cause_of(str(error))
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) > 1 else f"{value:.4f}"


def print_summary(stream: TextIO, result: LocalRun, log_path: Path, failed_node: str | None = None) -> None:
    """Prints the run's component table, why it stopped (if it did), the candidates' table, the selection, where
    the winner was pushed, and the log's path, all from what ML Metadata recorded; a failed run ends with its cause.

    Args:
        stream: the terminal.
        result: the run.
        log_path: the run's log, where tracebacks are.
        failed_node: the component that was running when the run failed, as the progress display saw it: a
            component can fail before ML Metadata records an execution of it (its inputs could not be resolved).
    """
    console = Console(file=stream, highlight=False)
    report = result.report
    rows = ((component.node_id, component.state, component.seconds) for component in report.components)
    console.print(component_table(rows, title=f"run {report.run_id}"))

    if result.stopped_at_gate:
        console.print(
            "[bold red]Data validation failed[/]: the run stopped before Transform; nothing was trained or pushed."
        )
        for line in report.anomalies:
            console.print(f"  - {escape(line)}")  # lines start with "[split]", which is not rich markup
        console.print("Fix the data, or update schema/schema.pbtxt if the change is intended.")

    _print_candidates(console, report)
    if report.selection_reason:
        console.print(f"selection: {escape(report.selection_reason)}")
    # Paths and causes are printed whole on one line each (soft wrap: the terminal folds them, rich does not cut
    # them at its width), so they can be copied and searched for.
    pushed = _push_line(report)
    if pushed:
        console.print(escape(pushed), soft_wrap=True)
    cause = None if result.stopped_at_gate else failure(result, failed_node)
    if cause is None:
        console.print(f"log: {log_path}", soft_wrap=True)
        return
    component, message = cause
    console.print(f"[bold red]{escape(component)} failed[/]: {escape(message)}", soft_wrap=True)
    console.print(f"the log has the whole error: {log_path}", soft_wrap=True)


def failure(result: LocalRun, failed_node: str | None = None) -> tuple[str, str] | None:
    """What failed and why, in a line: the component (or "the run") and the cause, or None if nothing failed.

    TFX records no message in ML Metadata for an executor that raises (only for one that returns a failed
    ExecutorOutput), so the cause is the exception LocalDagRunner raised, when ML Metadata has none.
    """
    failed = [component for component in result.report.failed if component.node_id != names.VALIDATION_GATE]
    if not failed and result.error is None:
        return None
    component = failed[0].node_id if failed else failed_node or "the run"
    recorded = cause_of(failed[0].error) if failed else ""
    if recorded:
        return component, recorded
    return component, exception_cause(result.error) if result.error is not None else "see the log"


def _push_line(report: RunReport) -> str:
    """Where the winner went, or why nothing was pushed; empty if the run never came near the Pusher."""
    if report.pushed_path:
        return f"pushed to: {report.pushed_path}"
    pusher = next((component for component in report.components if component.node_id == names.PUSHER), None)
    if pusher is not None and pusher.state == FAILED:
        selected = f"{report.selected} was selected, but " if report.selected else ""
        return f"pushed: nothing ({selected}the push failed)"
    if report.blessed is False:
        return "pushed: nothing (no candidate was blessed)"
    if report.blessed:
        return "pushed: nothing (the Pusher did not run)"
    return ""


def _print_candidates(console: Console, report: RunReport) -> None:
    """One row per candidate with its eval-split metrics and blessing, the winner marked, and the previously
    pushed model (the baseline every candidate was compared with) as the last row."""
    evaluated = [candidate for candidate in report.candidates.values() if candidate.metrics]
    if not evaluated:
        return
    table = Table(box=None, header_style="bold", padding=(0, 1), title="candidate models (eval split)")
    table.add_column("model", no_wrap=True)
    for _, label in SHOWN_METRICS:
        table.add_column(label, justify="right")
    table.add_column("blessed")
    for candidate in evaluated:
        verdict = {True: "yes", False: "[yellow]no[/]", None: "-"}[candidate.blessed]
        name = candidate.name
        if candidate.name == report.selected:
            name, verdict = f"[bold green]{name}[/]", "[bold green]selected[/]"
        table.add_row(name, *(_number(candidate.metrics.get(key)) for key, _ in SHOWN_METRICS), verdict)
    baseline = report.baseline_metrics
    table.add_row(
        "baseline",
        *(_number(baseline.get(key)) if baseline else "-" for key, _ in SHOWN_METRICS),
        "last pushed" if baseline else "(none yet)",
    )
    console.print(table)
