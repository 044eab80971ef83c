"""The ``taxi-pipeline`` command as users run it: a real subprocess, its exit code and what it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from taxi_rows import read_rows, write_csv

from pipeline.config import PROJECT_DIR

CLI = [sys.executable, "-m", "cli.main"]


def _run(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=PROJECT_DIR)


def test_help_does_not_load_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "from cli import main as cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['--help'])\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['run', '--help'])\n"
        "heavy = sorted(m for m in ('tensorflow', 'tfx', 'apache_beam') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert "run the whole pipeline" in _run("--help").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--data", "/nonexistent/taxi"], "error: data folder /nonexistent/taxi does not exist"),
        (["run", "--set", "training.steps=5"], "error: --set: unknown key 'training.steps'"),
        (["run", "--set", "training.train_steps=lots"], "expected an integer, got 'lots'"),
        (["run", "--profile", "production"], "error: profile 'production' not found"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(tmp_path, args, message):
    result = _run(*args, "--home", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "metadata.sqlite").exists()


def test_bad_values_stop_at_the_gate_with_exit_3_and_a_plain_explanation(tmp_path):
    header, rows = read_rows(600)
    for row in rows[::5]:
        row["fare"] = "-12.5"  # fares are never negative
    data = write_csv(tmp_path / "data", header, rows)

    result = _run("run", "--home", str(tmp_path / "home"), "--data", data, timeout=600)
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
    reuses what finished before the interruption and re-executes the rest."""
    import signal
    import time

    from pipeline.config import load_config
    from runners.local import run_local

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
            time.sleep(2)
            process.send_signal(signal.SIGINT)
    assert process.wait(timeout=300) == 130, "".join(output)
    assert output[-1].startswith("interrupted; the log is ")

    rerun = run_local(load_config("local", overrides, home=str(home), data_root=str(data)))
    assert rerun.succeeded, rerun.error
    states = {component.node_id: component.state for component in rerun.report.components}
    assert states["CsvExampleGen"] == states["StatisticsGen"] == states["ValidationGate"] == "cached"
    assert states["Transform"] == states["Trainer_wide_and_deep"] == "done"
    assert rerun.report.pushed_path
