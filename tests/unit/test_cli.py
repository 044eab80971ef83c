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
        (
            ["run", "--set", "data.bigquery_query=SELECT 1"],
            "error: data.bigquery_query reads the trips from BigQuery, which runs on the vertex",
        ),
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


def _taxi_folder(folder, bad_line: int | None = None) -> str:
    """The bundled data's first 3,000 rows in ``folder``; line ``bad_line`` (the header is line 1) loses a field."""
    lines = (PROJECT_DIR / "data" / "taxi.csv").read_bytes().splitlines(keepends=True)[:3001]
    if bad_line:
        lines[bad_line - 1] = lines[bad_line - 1].rsplit(b",", 1)[0] + b"\n"
    folder.mkdir(parents=True)
    (folder / "taxi.csv").write_bytes(b"".join(lines))
    return str(folder)


@pytest.mark.parametrize("mistake", ["ragged row", "serving directory below a file"])
def test_input_and_output_mistakes_found_by_reading_exit_2_before_tensorflow_loads(tmp_path, mistake):
    """A short row far into the file, or a serving directory that cannot be created, is one line and exit 2 from
    the preflight, before TensorFlow is imported (the subprocess reports which heavy modules it loaded)."""
    (tmp_path / "a-file").write_text("")
    if mistake == "ragged row":
        args = ["--data", _taxi_folder(tmp_path / "data", bad_line=2800)]
        expected = f"error: {tmp_path}/data/taxi.csv: line 2800 has 17 fields, the header has 18 (a row cut short?)"
    else:
        args = ["--data", _taxi_folder(tmp_path / "data"), "--set", f"serving.directory={tmp_path}/a-file/serving"]
        expected = (
            f"error: serving.directory: cannot create {tmp_path}/a-file/serving/taxi: {tmp_path}/a-file is a file, "
            "not a folder"
        )
    code = (
        "import sys\n"
        "from cli import main as cli\n"
        f"code = cli.main(['run', '--home', {str(tmp_path / 'home')!r}, *{args!r}])\n"
        "heavy = sorted(m for m in ('tensorflow', 'tfx', 'apache_beam') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_DIR)
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr
    assert result.stderr.strip() == expected
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("serving", ["missing", "empty", "a version without saved_model.pb"])
def test_serve_without_a_complete_pushed_version_exits_2_before_tensorflow_loads(tmp_path, serving):
    """docs/SERVING.md: a home without pushed models stops the server at once with one line, whether the model's
    folder is missing or holds no version the Pusher finished (it writes ``saved_model.pb`` last)."""
    model_dir = tmp_path / "serving" / "taxi"
    if serving != "missing":
        model_dir.mkdir(parents=True)
    if serving == "a version without saved_model.pb":
        (model_dir / "1795482628" / "variables").mkdir(parents=True)
    code = (
        "import sys\n"
        "from cli import main as cli\n"
        f"code = cli.main(['serve', '--home', {str(tmp_path)!r}, '--port', '0'])\n"
        "print(code, sorted(m for m in ('tensorflow', 'uvicorn', 'starlette') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120)
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr
    missing = " (the folder does not exist)" if serving == "missing" else ""
    assert result.stderr == (
        f"error: no pushed models in {model_dir}{missing}: run `taxi-pipeline run --home {tmp_path}` first, "
        "or point --home at the pipeline's home\n"
    )
