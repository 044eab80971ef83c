"""The ``taxi-pipeline`` command's answers that need no pipeline run: help, and one line for each user mistake.

Runs that go through the pipeline (exit 3 at the gate, Ctrl-C) are in ``tests/e2e/test_cli_runs.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

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
        (["run", "--bogus"], "error: No such option '--bogus'. (see taxi-pipeline run --help)"),
        (["compile"], "error: Missing option '--runner'. Choose from: vertex, kubeflow, airflow"),
        (["serve", "--port", "70000"], "error: Invalid value for '--port': 70000 is not in the range 0<=x<=65535"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(tmp_path, args, message):
    result = _run(*args, "--home", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "metadata.sqlite").exists()
