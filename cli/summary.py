"""The end-of-run summary: each component's outcome and time, every candidate's evaluation next to the previously
pushed model, which candidate won and why, and where the winner was pushed."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.progress import component_table
from runners.local import LocalRun
from runs.report import RunReport

# Metrics shown, in order, with the names TFMA records them under.
SHOWN_METRICS = (
    ("auc", "AUC"),
    ("binary_accuracy", "accuracy"),
    ("calibration", "calibration"),
    ("example_count", "examples"),
)


def _last_line(text: str) -> str:
    """Python errors put the useful sentence last; TFX wraps them in longer messages."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "see the log"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) > 1 else f"{value:.4f}"


def print_summary(stream: TextIO, result: LocalRun, log_path: Path) -> None:
    """Prints the run's component table, why it stopped or failed (if it did), the candidates' table, the
    selection and where the winner was pushed, and the log's path, all from what ML Metadata recorded."""
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
    elif report.failed:
        for component in report.failed:
            console.print(f"[bold red]{component.node_id} failed[/]: {escape(_last_line(component.error))}")
    elif result.error is not None:
        console.print(f"[bold red]The run failed[/]: {escape(_last_line(str(result.error)))}")

    _print_candidates(console, report)
    if report.selection_reason:
        console.print(f"selection: {escape(report.selection_reason)}")
    if report.pushed_path:
        console.print(f"pushed to: {report.pushed_path}")
    elif report.blessed is not None:
        console.print("pushed: nothing (no candidate was blessed)")
    console.print(f"log: {log_path}")


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
