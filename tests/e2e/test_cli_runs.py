"""``taxi-pipeline run`` as users run it, through the real pipeline: a real subprocess, its exit code and what it
prints when the data fails validation, a component fails, the user presses Ctrl-C or the process is killed."""

from __future__ import annotations

import codecs
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from taxi_rows import read_rows, write_csv

from pipeline.config import PROJECT_DIR, load_config
from runners.local import run_local
from runs import report as run_report
from runs.store import open_sqlite

CLI = [sys.executable, "-m", "cli.main"]


def test_bad_values_stop_at_the_gate_with_exit_3_and_a_plain_explanation(tmp_path):
    header, rows = read_rows(600)
    for row in rows[::5]:
        row["fare"] = "-12.5"  # fares are never negative
    data = write_csv(tmp_path / "data", header, rows)

    command = [*CLI, "run", "--home", str(tmp_path / "home"), "--data", data]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=PROJECT_DIR)
    assert result.returncode == 3, result.stdout + result.stderr
    out = result.stdout
    assert "Data validation failed" in out
    assert "[train] feature 'fare'" in out  # each problem names its split and feature
    assert "ValidationGate" in out and "failed" in out
    assert "Traceback" not in out + result.stderr
    logs = list(Path(tmp_path / "home" / "logs").glob("run-*.log"))
    assert len(logs) == 1 and "Component Transform is running" not in logs[0].read_text()
    assert not (tmp_path / "home" / "serving").exists()


def test_interrupted_run_says_so_and_the_next_run_completes_from_the_same_store(tmp_path):
    """Ctrl-C during Transform: exit 130 with a line on the terminal; the store stays usable, and the next run
    reuses what finished before the interruption and re-executes the rest. While the first run holds the home, a
    second one is refused with exit 2."""
    data = write_csv(tmp_path / "data", *read_rows(1500))
    home = tmp_path / "home"
    overrides = [
        "training.train_steps=50",
        "training.eval_steps=3",
        "evaluation.min_auc=0.5",
        "candidates.names=wide_and_deep",
    ]
    command = [*CLI, "run", "--home", str(home), "--data", str(data)]
    for override in overrides:
        command += ["--set", override]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A terminal's Ctrl-C: SIGINT with its default handling (a background job would inherit "ignored").
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if "Transform: running" in line:
            # Meanwhile a second run on the same home is refused at once, naming the first.
            second = subprocess.run(
                [*CLI, "run", "--home", str(home), "--data", str(data)],
                cwd=PROJECT_DIR,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode == 2, second.stdout + second.stderr
            assert second.stderr.startswith(f"error: another run is in progress in {home} (run ")
            assert f"process {process.pid}" in second.stderr and "Traceback" not in second.stderr
            time.sleep(1)
            process.send_signal(signal.SIGINT)
    assert process.wait(timeout=300) == 130, "".join(output)
    assert output[-1].startswith("interrupted; the log is ")

    rerun = run_local(load_config("local", overrides, home=str(home), data_root=str(data)))
    assert rerun.succeeded, rerun.error
    states = {component.node_id: component.state for component in rerun.report.components}
    assert states["CsvExampleGen"] == states["StatisticsGen"] == states["ValidationGate"] == "cached"
    assert states["Transform"] == states["Trainer_wide_and_deep"] == "done"
    assert rerun.report.pushed_path


# One small candidate, few steps, no slices: the cheapest run that still goes from the CSV to a pushed model.
QUICK_RUN = [
    "training.train_steps=50",
    "training.eval_steps=3",
    "evaluation.min_auc=0.5",
    "evaluation.slice_features=",
    "candidates.names=linear",
]
UPSTREAM_OF_TRANSFORM = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ImportSchemaGen", "ExampleValidator"]


def _excel_csv(folder: Path, rows: int) -> str:
    """The first ``rows`` rows of the bundled data as Excel's "CSV UTF-8" saves them: a byte-order mark first."""
    data = write_csv(folder, *read_rows(rows))
    path = folder / "taxi.csv"
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    return data


def _start_run(home: Path, data: str, *overrides: str) -> subprocess.Popen:
    """``taxi-pipeline run`` in a session of its own (its process group can be killed whole), output piped."""
    command = [*CLI, "run", "--home", str(home), "--data", data]
    for override in [*QUICK_RUN, *overrides]:
        command += ["--set", override]
    return subprocess.Popen(
        command, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def test_a_failing_component_prints_its_cause_and_the_summary_says_the_push_failed(tmp_path):
    """A real Pusher failure: the serving directory, which the preflight found creatable, is made a plain file
    while Transform runs. The run exits 1, the terminal names the Pusher and the error's last line and the log, and
    the summary says the push failed (a candidate was selected), not that nothing was blessed.

    The data is saved as Excel saves "CSV UTF-8": it reaching the Pusher shows that ExampleGen named the first
    column without the byte-order mark (with it, the curated schema's feature would be missing at the gate)."""
    data = _excel_csv(tmp_path / "data", 1000)
    serving = tmp_path / "serving"
    process = _start_run(tmp_path / "home", data, f"serving.directory={serving}")
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if "Transform: running" in line:
            serving.write_text("a file where the Pusher wants a folder\n")
    assert process.wait(timeout=600) == 1, "".join(output)
    out = "".join(output)
    assert "Traceback" not in out
    summary = out[out.index("candidate models") :].splitlines()
    cause, log_line = summary[-3:-1]
    assert cause.startswith("Pusher failed: ") and str(serving) in cause, out
    assert len(cause) < 300 and cause.endswith("is not a directory")
    assert log_line.startswith("the log has the whole error: ") and log_line.endswith(".log")
    assert Path(log_line.split(": ", 1)[1]).is_file()
    assert "pushed: nothing (linear was selected, but the push failed)" in summary
    assert "no candidate was blessed" not in out
    report = run_report.read_run(open_sqlite(tmp_path / "home" / "metadata.sqlite"), "taxi")
    states = {component.node_id: component.state for component in report.components}
    assert states["ValidationGate"] == states["Transform"] == states["ModelSelector"] == "done"
    assert states["Pusher"] == "failed"


def test_a_run_killed_during_transform_resumes_from_the_cache_with_an_intact_store(tmp_path):
    """kill -9 of the whole process group while Transform runs: no handler runs, the execution stays "running" in
    ML Metadata. A new run (exit 0) reuses everything that finished before the kill, runs the rest and pushes, and
    the store reads both runs back. (The data has Excel's byte-order mark: the run completes with it.)"""
    data = _excel_csv(tmp_path / "data", 1000)
    home = tmp_path / "home"
    process = _start_run(home, data)
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if "Transform: running" in line:
            time.sleep(2)  # inside Transform's execution, which ML Metadata has recorded as running
            os.killpg(process.pid, signal.SIGKILL)
            break
    assert process.wait(timeout=60) == -signal.SIGKILL, "".join(output)
    process.stdout.close()

    rerun = _start_run(home, data)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    store = open_sqlite(home / "metadata.sqlite")
    killed_id, rerun_id = run_report.run_ids(store, "taxi")
    killed = {c.node_id: c.state for c in run_report.read_run(store, "taxi", run_id=killed_id).components}
    assert all(killed[node] == "done" for node in [*UPSTREAM_OF_TRANSFORM, "ValidationGate"]), killed
    assert killed["Transform"] == "running"  # killed: nobody could record an end
    report = run_report.read_run(store, "taxi", run_id=rerun_id)
    states = {c.node_id: c.state for c in report.components}
    assert all(states[node] == "cached" for node in [*UPSTREAM_OF_TRANSFORM, "ValidationGate"]), states
    assert states["Transform"] == states["Trainer_linear"] == states["Pusher"] == "done", states
    assert Path(report.pushed_path, "saved_model.pb").is_file()
    assert f"pushed to: {report.pushed_path}" in out
