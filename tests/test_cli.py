"""The ``taxi-pipeline`` command as users run it: a real subprocess, its exit code and what it prints."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import PROJECT_DIR

CLI = [sys.executable, "-m", "runners.cli"]


def _run(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=PROJECT_DIR)


def test_help_does_not_load_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "from runners import cli\n"
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
    with (PROJECT_DIR / "data" / "taxi.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for _, row in zip(range(600), reader, strict=False)]
        header = list(reader.fieldnames or [])
    for row in rows[::5]:
        row["fare"] = "-12.5"  # fares are never negative
    data = tmp_path / "data"
    data.mkdir()
    with (data / "trips.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)

    result = _run("run", "--home", str(tmp_path / "home"), "--data", str(data), timeout=600)
    assert result.returncode == 3, result.stdout + result.stderr
    out = result.stdout
    assert "Data validation failed" in out
    assert "[train] feature 'fare'" in out  # each problem names its split and feature
    assert "ValidationGate" in out and "failed" in out
    assert "Traceback" not in out + result.stderr
    logs = list(Path(tmp_path / "home" / "logs").glob("run-*.log"))
    assert len(logs) == 1 and "Component Transform is running" not in logs[0].read_text()
    assert not (tmp_path / "home" / "serving").exists()
