"""The explorer's pages: one handler each, reading through ``runs/`` and rendering one template.

Handlers are plain functions (Starlette runs them in its thread pool): ML Metadata calls block, and a page is a
handful of them. Every page has its own URL, so a link can be shared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from pipeline.config import config_from_dict, load_config
from pipeline.errors import UserError
from runs import active, compare, nodes
from runs.catalog import RUN_STATES
from runs.graph import RunGraph, run_graph
from ui import forms, launcher, security
from ui.explorer import Explorer

RUNS_PER_PAGE = 25
LOG_TAIL_LINES = 2000


def _explorer(request: Request) -> Explorer:
    return request.app.state.explorer


def render(request: Request, template: str, status: int = 200, **values: Any) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, template, {"explorer": _explorer(request), **values}, status_code=status
    )


def _active(explorer: Explorer) -> active.ActiveRun | None:
    return active.current(explorer.config.home)


def runs_list(request: Request) -> Response:
    explorer = _explorer(request)
    state = request.query_params.get("state") or None
    if state is not None and state not in RUN_STATES:
        raise HTTPException(404, f"no such state: {state}")
    running = _active(explorer)
    page = explorer.catalog.page(
        _int(request.query_params.get("page"), 1), RUNS_PER_PAGE, state, running.run_id if running else ""
    )
    return render(request, "runs.html", page=page, state=state, states=RUN_STATES, running=running)


def _graph(explorer: Explorer, run_id: str) -> tuple[RunGraph, active.ActiveRun | None]:
    running = _active(explorer)
    try:
        return run_graph(explorer.store, explorer.pipeline_name, run_id, running), running
    except LookupError:
        raise HTTPException(404, f"no run {run_id}") from None


def _graph_data(request: Request, graph: RunGraph) -> dict[str, Any]:
    """The graph as the page's script draws it: nodes with their state, time and link, and the edges."""
    return {
        "nodes": [
            {
                "id": node.node_id,
                "state": node.state,
                "seconds": node.seconds,
                "component": node.component,
                "href": str(request.url_for("node", run_id=graph.run_id, node_id=node.node_id))
                if node.execution_id is not None
                else "",
            }
            for node in graph.nodes
        ],
        "edges": graph.essential_edges,
    }


def run_page(request: Request) -> Response:
    explorer = _explorer(request)
    run_id = request.path_params["run_id"]
    graph, running = _graph(explorer, run_id)
    live = running is not None and running.run_id == run_id
    previous = compare.previous_run_id(explorer.store, explorer.pipeline_name, run_id)
    differences = []
    if previous and graph.config_json:
        previous_json = compare.run_config_json(explorer.store, previous, explorer.pipeline_name)
        differences = [row for row in compare.config_rows(previous_json, graph.config_json) if row.differs]
    return render(
        request,
        "run.html",
        graph=graph,
        graph_data=_graph_data(request, graph),
        live=live,
        running=running,
        config=compare.flatten(graph.config_json),
        previous=previous,
        differences=differences,
        csrf=security.csrf_token(explorer.settings, f"stop:{run_id}"),
    )


def run_graph_fragment(request: Request) -> Response:
    """The graph and the node table alone, for the run page to refresh while the run is in progress.

    A run that ended before ML Metadata saw it (stopped while loading TensorFlow) has nothing left to show: the
    fragment says so and stops the refreshing.
    """
    explorer = _explorer(request)
    run_id = request.path_params["run_id"]
    try:
        graph, running = _graph(explorer, run_id)
    except HTTPException:
        return render(request, "run_graph_gone.html", run_id=run_id)
    live = running is not None and running.run_id == run_id
    return render(request, "run_graph.html", graph=graph, graph_data=_graph_data(request, graph), live=live)


def run_log(request: Request) -> Response:
    """The run's log file as text (its last lines), only from the home's logs folder."""
    explorer = _explorer(request)
    graph, _ = _graph(explorer, request.path_params["run_id"])
    logs = Path(explorer.config.log_dir).resolve()
    path = Path(graph.log_path).resolve() if graph.log_path else None
    if path is None or logs not in path.parents or not path.is_file():
        raise HTTPException(404, "this run recorded no log file in this home")
    lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return PlainTextResponse("\n".join(lines) + "\n")


def node_page(request: Request) -> Response:
    explorer = _explorer(request)
    run_id, node_id = request.path_params["run_id"], request.path_params["node_id"]
    try:
        detail = nodes.node_detail(explorer.store, run_id, node_id, explorer.pipeline_name)
    except LookupError as error:
        raise HTTPException(404, str(error)) from None
    return render(request, "node.html", node=detail)


async def new_run(request: Request) -> Response:
    """GET: the form (``?clone=<run id>`` pre-fills it from that run). POST: check it, start the run, and go to
    its live page."""
    explorer = _explorer(request)
    settings = explorer.settings
    profile = _profile_config(explorer)
    if request.method == "POST":
        form = {key: str(value) for key, value in (await request.form()).items()}
        return await _start(request, explorer, profile, form)
    clone = request.query_params.get("clone", "")
    from_profile = request.query_params.get("from") == "profile"
    source = "" if from_profile else clone or _newest_run(explorer)
    values = _config_of(explorer, source)
    return render(
        request,
        "new_run.html",
        fields=forms.fields(profile, values),
        clone=clone,
        source=source,
        csrf=security.csrf_token(settings, "new"),
        error="",
        running=_active(explorer),
    )


async def _start(request: Request, explorer: Explorer, profile: Any, form: dict[str, str]) -> Response:
    from starlette.concurrency import run_in_threadpool

    settings = explorer.settings
    refusal = security.check_state_change(request, settings, "new", form)
    items = forms.overrides(profile, form)
    error = refusal
    if not error:
        try:
            forms.check(settings.config.profile, settings.config.home, items)
        except UserError as mistake:
            error = str(mistake)
    if not error:
        started = await run_in_threadpool(launcher.start_run, settings.config, items)
        if started.run_id:
            url = request.url_for("run", run_id=started.run_id)
            return RedirectResponse(str(url), status_code=303)
        error = started.error
    values = {field.name: form.get(field.name, field.value) for field in forms.fields(profile)}
    shown = [
        forms.FormField(f.name, f.kind, values[f.name] if f.kind != "boolean" else _checked(form, f.name), f.default)
        for f in forms.fields(profile)
    ]
    return render(
        request,
        "new_run.html",
        status=403 if refusal else 400,
        fields=shown,
        clone="",
        source="",
        csrf=security.csrf_token(settings, "new"),
        error=error,
        running=_active(explorer),
    )


async def stop_run(request: Request) -> Response:
    explorer = _explorer(request)
    run_id = request.path_params["run_id"]
    form = {key: str(value) for key, value in (await request.form()).items()}
    refusal = security.check_state_change(request, explorer.settings, f"stop:{run_id}", form)
    if refusal:
        return PlainTextResponse(refusal, status_code=403)
    problem = launcher.stop_run(explorer.config, run_id)
    if problem:
        return PlainTextResponse(problem, status_code=409)
    return RedirectResponse(str(request.url_for("run", run_id=run_id)), status_code=303)


def _profile_config(explorer: Explorer) -> Any:
    """The profile's config for this home, as a run started now without overrides would get it."""
    config = explorer.config
    return load_config(config.profile, home=config.home)


def _newest_run(explorer: Explorer) -> str:
    newest = explorer.catalog.page(1, 1)
    return newest.rows[0].run_id if newest.rows else ""


def _config_of(explorer: Explorer, run_id: str) -> Any:
    """The config ``run_id`` recorded, or None (the form then shows the profile's)."""
    if not run_id:
        return None
    text = compare.run_config_json(explorer.store, run_id, explorer.pipeline_name)
    if not text:
        return None
    try:
        return config_from_dict(json.loads(text))
    except UserError:
        return None  # recorded by an older version whose settings no longer all exist


def _checked(form: dict[str, str], name: str) -> str:
    return "true" if form.get(name) in ("true", "on") else "false"


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
