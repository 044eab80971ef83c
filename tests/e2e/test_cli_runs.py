"""``taxi-pipeline run`` as users run it, through the real pipeline: a real subprocess, its exit code and what it
prints when the data fails validation or the user presses Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from taxi_rows import read_rows, write_csv

from pipeline.config import PROJECT_DIR, load_config
from runners.local import run_local

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
