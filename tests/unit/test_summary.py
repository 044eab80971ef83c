"""The end-of-run summary's last lines: what failed and why, and what was pushed (``cli/summary.py``).

The runs here are reports as ``runs.report.read_run`` returns them, written out by hand; a real failed run's
summary is checked end to end in ``tests/e2e/test_cli_runs.py``.
"""

from __future__ import annotations

import io
from pathlib import Path

from cli import summary
from runners.local import LocalRun
from runs.report import ComponentRecord, RunReport

LOG = Path("/home/me/pipeline_home/logs/run-1.log")


def _report(states: dict[str, str], **fields) -> RunReport:
    components = [ComponentRecord(node_id, state, 1.0) for node_id, state in states.items()]
    return RunReport(pipeline_name="taxi", run_id="2026-12-01T00:00:00", components=components, **fields)


def _last_lines(run: LocalRun, count: int, failed_node: str | None = None) -> list[str]:
    printed = io.StringIO()
    summary.print_summary(printed, run, LOG, failed_node=failed_node)
    return printed.getvalue().splitlines()[-count:]


def test_a_failed_pusher_is_named_with_its_cause_and_the_push_line_says_the_push_failed():
    report = _report({"ModelSelector": "done", "Pusher": "failed"}, blessed=True, selected="dnn")
    error = RuntimeError("Traceback (most recent call last):\n  ...\nOSError: /srv/serving is not a directory\n")
    assert _last_lines(LocalRun(report, error), 3) == [
        "pushed: nothing (dnn was selected, but the push failed)",
        "Pusher failed: RuntimeError: OSError: /srv/serving is not a directory",
        f"the log has the whole error: {LOG}",
    ]


def test_the_cause_ml_metadata_recorded_comes_first_and_beams_step_lines_are_dropped():
    report = _report({"Transform": "failed"})
    report.components[0].error = "ValueError: bad analyzer input\n[while running 'Analyze/Mean']"
    lines = _last_lines(LocalRun(report, RuntimeError("something else")), 2)
    assert lines[0] == "Transform failed: ValueError: bad analyzer input"


def test_a_long_message_is_cut_and_a_failure_before_ml_metadata_names_the_running_component():
    report = _report({"Evaluator_dnn": "not run"}, blessed=None)
    lines = _last_lines(LocalRun(report, ValueError("x" * 1000)), 2, failed_node="Evaluator_dnn")
    assert lines[0].startswith("Evaluator_dnn failed: ValueError: xxx") and lines[0].endswith("...")
    assert len(lines[0]) < 240
    assert _last_lines(LocalRun(report, KeyError()), 2)[0] == "the run failed: KeyError"


def test_a_run_without_failure_ends_with_the_log_and_an_unblessed_one_says_so():
    report = _report({"ModelSelector": "done", "Pusher": "done"}, blessed=False)
    assert _last_lines(LocalRun(report), 2) == ["pushed: nothing (no candidate was blessed)", f"log: {LOG}"]
