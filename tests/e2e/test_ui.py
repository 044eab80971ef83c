"""The run explorer (``taxi-pipeline ui``) used as a person uses it: a real pipeline home, the real server on
127.0.0.1, and Debian's Chromium driven by Playwright (``executable_path``; nothing is downloaded). Where Chromium
is missing and cannot be installed (``make test`` installs it as root), the browser tests skip and say why; the
HTTP-level tests run regardless.

The home's data is a 2,000-row slice of the bundled data in which one row in seven has the company
``<script>alert(1)</script>``: a page that shows it must show it as text. Screenshots of each page go to
``$UI_SCREENSHOTS`` when set (docs/UI.md's are made this way), else to the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from small_run import SLICE_ROWS, SMALL_RUN
from taxi_rows import read_rows, write_csv

from pipeline.config import PROJECT_DIR, load_config
from runners.local import LocalRun, run_local
from runs import active
from serving.server import BackgroundServer, serve_in_background
from ui.app import create_app
from ui.settings import UiSettings

COMPANY = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def ui_home(tmp_path_factory) -> tuple[Path, str]:
    """A home with one real run on data whose company names include a script tag."""
    header, rows = read_rows(SLICE_ROWS)
    for row in rows[::7]:
        row["company"] = COMPANY
    data = write_csv(tmp_path_factory.mktemp("ui_data"), header, rows)
    home = tmp_path_factory.mktemp("ui_home")
    return home, data


@pytest.fixture(scope="module")
def first_ui_run(ui_home) -> LocalRun:
    home, data = ui_home
    run = run_local(load_config("local", SMALL_RUN, home=str(home), data_root=data))
    assert run.succeeded and run.report.pushed_path, run.error
    return run


@pytest.fixture(scope="module")
def explorer(ui_home, first_ui_run) -> Iterator[BackgroundServer]:
    home, data = ui_home
    # The explorer shows the home as `taxi-pipeline ui --home HOME` would; the New run form's values come from the
    # newest run, so runs started from it use the small settings and the slice.
    config = load_config("local", home=str(home))
    server = serve_in_background(create_app(UiSettings(config=config, port=0)))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(explorer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=explorer.url, timeout=60, follow_redirects=False) as client:
        yield client


def _screenshot_dir(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- HTTP: what every page answers, and what the server refuses ------------------------------------------------


def test_every_page_of_the_first_run_answers(client, first_ui_run):
    run_id = first_ui_run.report.run_id
    trainer = first_ui_run.report.component("Trainer_linear")
    pages = [
        "/",
        f"/runs/{run_id}",
        f"/runs/{run_id}/graph",
        f"/runs/{run_id}/nodes/Trainer_linear",
        f"/runs/{run_id}/models",
        f"/compare?a={run_id}&b={run_id}",
        "/new",
    ]
    for page in pages:
        answer = client.get(page)
        assert answer.status_code == 200, (page, answer.text[:500])
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert answer.headers["x-frame-options"] == "DENY"
    node = client.get(f"/runs/{run_id}/nodes/Trainer_linear").text
    assert "run_fn" in node and "models.trainer.run_fn" in node  # the component's parameters
    assert trainer.execution_id is not None
    assert client.get("/runs/no-such-run").status_code == 404
    assert client.get("/artifacts/999999").status_code == 404


def test_the_runs_list_shows_the_winner_and_the_pushed_version(client, first_ui_run):
    page = client.get("/").text
    report = first_ui_run.report
    assert report.run_id in page and report.selected in page
    assert f"version {Path(report.pushed_path).name}" in page
    assert client.get("/?state=failed").text.count("<tr>") == 1 + 1  # the header row and "no runs" row


def test_another_host_name_is_refused(explorer):
    answer = httpx.get(explorer.url + "/", headers={"Host": "attacker.example"})
    assert answer.status_code == 400


def test_state_changes_need_this_servers_form_token_and_the_same_origin(client, ui_home):
    home, _ = ui_home
    assert client.post("/new", data={"training.train_steps": "5"}).status_code == 403
    assert client.post("/runs/x/stop", data={"csrf": "forged"}).status_code == 403
    form = client.get("/new").text
    token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    other_site = {"Origin": "http://attacker.example"}
    assert client.post("/new", data={"csrf": token}, headers=other_site).status_code == 403
    assert active.current(home) is None  # nothing was started


def test_a_remote_bind_offers_no_run_form_without_a_token(first_ui_run, ui_home):
    home, _ = ui_home
    settings = UiSettings(config=load_config("local", home=str(home)), host="0.0.0.0", port=0)
    assert not settings.can_start_runs
    app = create_app(settings)
    from starlette.testclient import TestClient

    with TestClient(app, base_url="http://0.0.0.0") as remote:
        assert "New run" not in remote.get("/").text
        assert "Starting runs is off on this address" in remote.get("/new").text


def test_the_log_is_served_only_from_the_homes_logs(client, ui_home):
    """A run's log path comes from ML Metadata; a path outside <home>/logs is never read."""
    home, data = ui_home
    run_id = "2026-01-01T00:00:00.000001"
    with active.hold(home, run_id, "/etc/passwd"):
        answer = client.get(f"/runs/{run_id}/log")
    assert answer.status_code == 404 and "root:" not in answer.text


# --- In the browser ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package (make test does, as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("dialog", lambda dialog: problems.append(f"a dialog opened: {dialog.message}"))
    page.problems = problems
    yield page
    context.close()
    assert not problems, problems


def test_a_person_clicks_from_the_runs_to_a_node_an_artifact_and_back(page, explorer, first_ui_run, tmp_path_factory):
    shots = _screenshot_dir(tmp_path_factory)
    run_id = first_ui_run.report.run_id
    page.goto(explorer.url + "/")
    page.screenshot(path=str(shots / "runs.png"), full_page=True)
    page.click(f"text={run_id}")
    page.wait_for_selector(".graph svg .node")
    assert page.locator(".graph svg .node").count() == len(first_ui_run.report.components)
    page.screenshot(path=str(shots / "run.png"), full_page=True)
    page.click(".graph svg a[data-node='Trainer_linear']")
    page.wait_for_selector("h1:has-text('Trainer_linear')")
    assert "models.trainer.run_fn" in page.content()
    page.screenshot(path=str(shots / "node.png"), full_page=True)
    page.click("table.artifacts a:has-text('#')")  # the first input artifact
    page.wait_for_selector("h1")
    page.screenshot(path=str(shots / "artifact.png"), full_page=True)
    page.click("text=where it came from")
    page.wait_for_selector(".graph svg .node")
    page.screenshot(path=str(shots / "lineage.png"), full_page=True)
    page.goto(explorer.url + f"/runs/{run_id}")
    page.click("text=models")
    page.wait_for_selector("#chart-box-roc[data-drawn='yes'] canvas")  # uPlot drew the ROC curve
    for candidate in first_ui_run.report.candidates:
        assert candidate in page.inner_text("table.models")
    page.screenshot(path=str(shots / "models.png"), full_page=True)
    page.goto(explorer.url + f"/runs/{run_id}/schemas")
    assert "Curated and inferred schema: differences" in page.inner_text("main")
    page.screenshot(path=str(shots / "schemas.png"), full_page=True)


@pytest.mark.parametrize("width", [1280, 1024])
def test_every_page_of_a_run_fits_a_laptop_window(browser, explorer, first_ui_run, width):
    """No page scrolls sideways in a 1280- or 1024-pixel window: the node table beside the graph and long
    artifact property values (ExampleGen's input fingerprint) used to push pages 50-300 pixels wider."""
    run = f"/runs/{first_ui_run.report.run_id}"
    pages = ["/", run, f"{run}/models", f"{run}/schemas", "/compare", "/new"]
    pages += [f"{run}/nodes/{component.node_id}" for component in first_ui_run.report.components]
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    wider = {}
    for path in pages:
        page.goto(explorer.url + path)
        page.wait_for_load_state("networkidle")
        scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        if scroll > client:
            wider[path] = scroll - client
    context.close()
    assert not wider, f"pages wider than a {width}-pixel window (by pixels): {wider}"


def test_the_pushed_models_lineage_reaches_the_csv_file(page, explorer, first_ui_run, client):
    run_id = first_ui_run.report.run_id
    pusher = client.get(f"/runs/{run_id}/nodes/Pusher").text
    pushed_id = pusher.split("/artifacts/")[-1].split('"')[0].split("/")[0]
    page.goto(explorer.url + f"/artifacts/{pushed_id}/lineage")
    page.wait_for_selector(".graph svg .node")
    labels = page.eval_on_selector_all(".graph svg .node .label", "nodes => nodes.map(n => n.textContent)")
    for expected in ("Pusher", "ModelSelector", "Trainer_linear", "Transform", "CsvExampleGen", "input files"):
        assert expected in labels, labels
    assert "taxi.csv" in page.content()


def test_a_company_name_with_a_script_tag_shows_as_text(page, explorer, first_ui_run, client, tmp_path_factory):
    """The company names are in the examples' statistics and first rows: the tag is shown, never run."""
    run_id = first_ui_run.report.run_id
    node = client.get(f"/runs/{run_id}/nodes/StatisticsGen").text
    statistics_id = node.split("/artifacts/")[-1].split('"')[0].split("/")[0]
    page.goto(explorer.url + f"/artifacts/{statistics_id}")
    page.wait_for_load_state("networkidle")
    assert COMPANY in page.inner_text("main")
    page.screenshot(path=str(_screenshot_dir(tmp_path_factory) / "statistics.png"), full_page=True)
    assert "<script>alert(1)</script>" not in page.content().replace("&lt;script&gt;alert(1)&lt;/script&gt;", "")


def test_a_run_started_from_the_form_reaches_done_live(page, explorer, ui_home, first_ui_run, tmp_path_factory):
    shots = _screenshot_dir(tmp_path_factory)
    page.goto(explorer.url + "/new")
    page.screenshot(path=str(shots / "new_run.png"), full_page=True)
    page.fill("input[name='training.train_steps']", "60")
    page.click("button[type=submit]")
    page.wait_for_url("**/runs/**", timeout=90_000)
    run_id = page.url.rsplit("/runs/", 1)[1]
    assert run_id != first_ui_run.report.run_id
    assert page.get_attribute("#run-graph", "data-live") == "yes"
    page.wait_for_selector("#run-graph[data-live='no']", timeout=600_000)  # updated live, no reload
    states = page.eval_on_selector_all("table.nodes .state", "cells => cells.map(c => c.textContent)")
    assert set(states) <= {"done", "cached"}, states
    assert "training.train_steps" in page.inner_text("main")  # the difference from the previous run
    page.goto(explorer.url + f"/compare?a={first_ui_run.report.run_id}&b={run_id}&only=1")
    differing = "cells => cells.map(c => c.textContent)"
    rows = page.eval_on_selector_all("#config-comparison tr.differs td:first-child", differing)
    assert rows == ["training.train_steps"], rows
    # Same data: no statistic differs; other training steps: the candidates' metrics do.
    assert page.eval_on_selector_all("#data-comparison tr.differs", differing) == []
    assert page.locator("#data-comparison tr.same td:has-text('examples in train')").count() == 1
    assert page.locator("#model-comparison tr.differs").count() > 0
    page.screenshot(path=str(shots / "compare.png"), full_page=True)


def test_stop_interrupts_a_running_run_and_frees_the_home(page, explorer, ui_home, tmp_path_factory):
    home, data = ui_home
    page.goto(explorer.url + "/new")
    page.uncheck("input[name='pipeline.enable_cache']")  # a run that really works, so there is time to stop it
    page.click("button[type=submit]")
    page.wait_for_url("**/runs/**", timeout=90_000)
    run_id = page.url.rsplit("/runs/", 1)[1]
    # While it runs, a run from a shell on the same home is refused, naming this one.
    command = [sys.executable, "-m", "cli.main", "run", "--home", str(home), "--data", data]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=PROJECT_DIR)
    assert refused.returncode == 2 and f"(run {run_id}" in refused.stderr, refused.stderr
    page.wait_for_selector(".graph svg .node.state-running", timeout=300_000)  # a component is at work
    page.click("button:has-text('Stop')")
    page.wait_for_selector("#run-graph[data-live='no']", timeout=300_000)
    assert active.current(home) is None
    page.goto(explorer.url + "/?state=interrupted")
    assert run_id in page.inner_text("table.runs")
    page.goto(explorer.url + "/")
    page.screenshot(path=str(_screenshot_dir(tmp_path_factory) / "runs.png"), full_page=True)


# --- On a MySQL store (the composer profile's kind) -----------------------------------------------------------------

MARIADB = ("127.0.0.1", 3306)


@pytest.fixture
def mysql_database(first_ui_run, ui_home) -> Iterator[str]:
    """A fresh MariaDB database holding three runs recorded from the first run's records through the ML Metadata
    API (bench/ui.py's copier): what Composer's Airflow workers would have written into Cloud SQL."""
    import socket
    import uuid

    with socket.socket() as probe:
        probe.settimeout(2)
        if probe.connect_ex(MARIADB) != 0:
            pytest.skip("no MariaDB on 127.0.0.1:3306 (the project's machines run one; see README)")
    from ml_metadata.proto import metadata_store_pb2

    from bench.ui import build_store

    database = f"taxi_ui_{uuid.uuid4().hex[:8]}"
    connection = metadata_store_pb2.ConnectionConfig()
    connection.mysql.host, connection.mysql.port = MARIADB
    connection.mysql.user, connection.mysql.database = "root", database
    home, _ = ui_home
    build_store(home, connection, 3)
    yield database
    subprocess.run(["mariadb", "-h", MARIADB[0], "-u", "root", "-e", f"DROP DATABASE {database}"], check=False)


def test_the_explorer_reads_runs_from_a_mysql_store(mysql_database, ui_home, monkeypatch):
    """Every read-only page on the composer profile's kind of store; the copied runs' files are in the first run's
    pipeline root, which the profile is pointed at. Starting runs is off: the profile's runs are Airflow's."""
    home, _ = ui_home
    monkeypatch.setenv("MLMD_MYSQL_PASSWORD", "")
    overrides = [
        f"metadata.mysql_host={MARIADB[0]}",
        "metadata.mysql_user=root",
        f"metadata.mysql_database={mysql_database}",
        f"pipeline.root={home}/pipeline_root",
    ]
    config = load_config("composer", overrides, home="/tmp/composer-home")
    from starlette.testclient import TestClient

    with TestClient(create_app(UiSettings(config=config)), base_url="http://127.0.0.1") as client:
        runs = client.get("/")
        assert runs.status_code == 200 and runs.text.count('class="state state-done"') == 3
        assert "New run" not in runs.text
        run_ids = [part.split('"', 1)[0] for part in runs.text.split('href="http://127.0.0.1/runs/')[1:]]
        run_id = run_ids[0].split("/")[0]
        pages = {
            f"/runs/{run_id}": "Trainer_linear",
            f"/runs/{run_id}/nodes/Trainer_linear": "models.trainer.run_fn",
            f"/runs/{run_id}/models": "Confusion matrices",
            f"/runs/{run_id}/schemas": "Curated and inferred schema",
            f"/compare?a={run_id}&b={run_ids[-1].split('/')[0]}": "Candidates' metrics",
        }
        for page, text in pages.items():
            answer = client.get(page)
            assert answer.status_code == 200 and text in answer.text, page
        pusher = client.get(f"/runs/{run_id}/nodes/Pusher").text
        pushed_id = pusher.split("/artifacts/")[-1].split('"')[0].split("/")[0]
        assert "CsvExampleGen" in client.get(f"/artifacts/{pushed_id}/lineage").text
        assert "Signatures" in client.get(f"/artifacts/{pushed_id}").text
        assert "are started by its orchestrator" in client.get("/new").text
