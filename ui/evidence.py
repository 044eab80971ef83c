"""The explorer's pages about what a run produced: an artifact, its lineage, a run's models, and two runs compared.

Like ``ui/pages.py``: one plain handler per page, reading through ``runs/``, rendering one template.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runs import artifacts, compare, lineage, nodes
from runs.catalog import RunRow
from ui.pages import render

MAX_LINEAGE_LABEL = 40


def routes() -> list[Route]:
    return [
        Route("/artifacts/{artifact_id:int}", artifact_page, name="artifact"),
        Route("/artifacts/{artifact_id:int}/lineage", lineage_page, name="lineage"),
        Route("/runs/{run_id}/models", models_page, name="run_models"),
        Route("/runs/{run_id}/schemas", schemas_page, name="run_schemas"),
        Route("/compare", compare_page, name="compare"),
    ]


def _artifact(explorer: Any, artifact_id: int) -> Any:
    found = explorer.store.get_artifacts_by_id([artifact_id])
    if not found:
        raise HTTPException(404, f"no artifact {artifact_id}")
    return found[0]


def artifact_page(request: Request) -> Response:
    """An artifact as a person wants to see it (statistics, first rows, schema, signatures, ...), and its
    properties; files are read only from under the pipeline root."""
    explorer = request.app.state.explorer
    artifact = _artifact(explorer, request.path_params["artifact_id"])
    type_name = explorer.store.get_artifact_types_by_id([artifact.type_id])[0].name
    properties = {**artifact.properties, **artifact.custom_properties}
    view = artifacts.view(artifact.id, type_name, artifact.uri, properties, explorer.config.pipeline.root)
    shown = nodes.property_texts(artifact)
    return render(request, "artifact.html", artifact=artifact, type_name=type_name, view=view, properties=shown)


def schemas_page(request: Request) -> Response:
    """The run's curated schema beside the one inferred from its data, with their differences."""
    explorer = request.app.state.explorer
    run_id = request.path_params["run_id"]
    try:
        view = artifacts.schema_comparison(explorer.store, run_id, explorer.config.pipeline.root)
    except LookupError as error:
        raise HTTPException(404, str(error)) from None
    return render(request, "schemas.html", run_id=run_id, view=view)


def lineage_page(request: Request) -> Response:
    explorer = request.app.state.explorer
    artifact_id = request.path_params["artifact_id"]
    direction = request.query_params.get("direction", lineage.UPSTREAM)
    if direction not in (lineage.UPSTREAM, lineage.DOWNSTREAM):
        raise HTTPException(404, f"no such direction: {direction}")
    try:
        graph = lineage.lineage(explorer.store, artifact_id, direction)
    except LookupError as error:
        raise HTTPException(404, str(error)) from None
    data = {"nodes": [_lineage_node(request, node, graph.focus) for node in graph.nodes], "edges": graph.edges}
    return render(request, "lineage.html", graph=graph, graph_data=data, direction=direction, artifact_id=artifact_id)


def _lineage_node(request: Request, node: lineage.LineageNode, focus: str) -> dict[str, Any]:
    """A lineage node as the graph script draws it (the same drawing as a run's graph)."""
    if node.kind == "artifact":
        href = str(request.url_for("artifact", artifact_id=node.artifact_id))
        state = "focus" if node.key == focus else "artifact"
    elif node.kind == "execution":
        href = str(request.url_for("node", run_id=node.run_id, node_id=node.node_id)) if node.run_id else ""
        state = node.state
    else:
        href, state = "", "files"
    detail = node.detail if node.kind != "files" else f"{node.detail}: {', '.join(node.files) or 'none now'}"
    return {"id": node.key, "label": node.label, "state": state, "seconds": None, "component": detail, "href": href}


def models_page(request: Request) -> Response:
    explorer = request.app.state.explorer
    run_id = request.path_params["run_id"]
    context = explorer.store.get_context_by_type_and_name("pipeline_run", run_id)
    if context is None:
        raise HTTPException(404, f"no run {run_id}")
    row = explorer.catalog.row(context)
    return render(request, "models.html", run_id=run_id, row=row, candidates=[])


def compare_page(request: Request) -> Response:
    """Two runs' configs side by side (``?a=<run>&b=<run>``; ``only=1`` keeps the differences)."""
    explorer = request.app.state.explorer
    left, right = request.query_params.get("a", ""), request.query_params.get("b", "")
    only = request.query_params.get("only", "") == "1"
    recent = explorer.catalog.page(1, 50).rows
    rows: list[compare.ConfigRow] = []
    summaries: list[RunRow] = []
    if left and right:
        for run_id in (left, right):
            context = explorer.store.get_context_by_type_and_name("pipeline_run", run_id)
            if context is None:
                raise HTTPException(404, f"no run {run_id}")
            summaries.append(explorer.catalog.row(context))
        rows = compare.config_rows(
            compare.run_config_json(explorer.store, left), compare.run_config_json(explorer.store, right)
        )
    return render(
        request, "compare.html", left=left, right=right, only=only, rows=rows, summaries=summaries, recent=recent
    )
