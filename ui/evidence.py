"""The explorer's pages about what a run produced: an artifact, its lineage, a run's models, and two runs compared.

Like ``ui/pages.py``: one plain handler per page, reading through ``runs/``, rendering one template.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pipeline import names
from runs import artifacts, compare, contexts, evaluations, lineage, nodes
from runs import training as training_reader
from runs.catalog import RunRow
from ui.pages import render


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


@dataclasses.dataclass(frozen=True)
class CandidateEvidence:
    """One candidate of a run as the Models page shows it."""

    name: str
    evaluation: Any  # runs.evaluations.EvaluationView, or None when its Evaluator wrote nothing
    training: Any  # runs.training.TrainingView, or None
    blessed: bool | None
    evaluation_id: int | None
    model_id: int | None


def _candidate(outputs: dict[str, dict[str, Any]], name: str, root: str) -> CandidateEvidence:
    evaluated = outputs.get(names.evaluator(name), {})
    trained = outputs.get(names.trainer(name), {})
    evaluation = training = None
    if "evaluation" in evaluated:
        ref = evaluated["evaluation"]
        evaluation = _readable(root, ref, lambda path: evaluations.read_evaluation(ref.id, path))
    if "model_run" in trained:
        ref = trained["model_run"]
        training = _readable(root, ref, lambda path: training_reader.read_training(ref.id, path))
    blessing = evaluated.get("blessing")
    blessed = None if blessing is None else blessing.properties.get(names.BLESSED) == "1"
    return CandidateEvidence(
        name,
        evaluation,
        training,
        blessed,
        evaluated["evaluation"].id if "evaluation" in evaluated else None,
        trained["model"].id if "model" in trained else None,
    )


def _candidates(explorer: Any, run_id: str, outputs: dict[str, dict[str, Any]]) -> list[CandidateEvidence]:
    """The run's candidates in config order (or, for a run that recorded no config, as its Trainers say)."""
    config = compare.flatten(compare.run_config_json(explorer.store, run_id, explorer.pipeline_name))
    listed = [name.strip() for name in config.get("candidates.names", "").split(",") if name.strip()]
    found = [name for name in (names.candidate_of(node) for node in outputs) if name]
    root = explorer.config.pipeline.root
    return [_candidate(outputs, name, root) for name in dict.fromkeys(listed or sorted(found))]


def _statistics(explorer: Any, outputs: dict[str, dict[str, Any]]) -> Any:
    """The run's data statistics (StatisticsGen's), or None."""
    ref = outputs.get("StatisticsGen", {}).get("statistics")
    if ref is None:
        return None
    view = artifacts.view(ref.id, ref.type_name, ref.uri, ref.properties, explorer.config.pipeline.root)
    return view.detail


def _readable(root: str, ref: Any, read: Any) -> Any:
    """What ``read(path)`` returns for the artifact's folder, or None when its uri is not inside the pipeline root
    (nothing is read then) or its files are gone."""
    refusal, path = artifacts.checked_path(ref.uri, root)
    if refusal:
        return None
    try:
        return read(path)
    except (OSError, ValueError):
        return None


def models_page(request: Request) -> Response:
    """The run's candidates side by side: metrics, blessing and why not, the selection; ROC, precision-recall and
    calibration curves, confusion matrices, and training curves."""
    explorer = request.app.state.explorer
    run_id = request.path_params["run_id"]
    context = contexts.find_run(explorer.store, run_id, explorer.pipeline_name)
    if context is None:
        raise HTTPException(404, f"no run {run_id}")
    row = explorer.catalog.row(context)
    outputs = nodes.run_outputs(explorer.store, run_id, explorer.pipeline_name)
    candidates = _candidates(explorer, run_id, outputs)
    selector = outputs.get(names.MODEL_SELECTOR, {}).get("blessing")
    selection = None
    if selector is not None:
        view = artifacts.view(
            selector.id, "ModelBlessing", selector.uri, selector.properties, explorer.config.pipeline.root
        )
        selection = view.detail.selection if view.detail is not None else None
    return render(
        request,
        "models.html",
        run_id=run_id,
        row=row,
        candidates=candidates,
        selection=selection,
        charts=_charts(candidates),
    )


def _charts(candidates: list[CandidateEvidence]) -> dict[str, dict[str, Any]]:
    """The curves as the page's chart script draws them: one chart per kind, one series per candidate."""
    evaluated = [c for c in candidates if c.evaluation is not None and c.evaluation.candidate is not None]
    charts: dict[str, dict[str, Any]] = {}
    if evaluated:
        charts["roc"] = _chart(
            "ROC curve",
            "false positive rate",
            "true positive rate (recall)",
            True,
            [(c.name, c.evaluation.candidate.roc) for c in evaluated] + [("chance", [(0.0, 0.0), (1.0, 1.0)])],
        )
        charts["pr"] = _chart(
            "Precision-recall",
            "recall",
            "precision",
            True,
            [(c.name, c.evaluation.candidate.precision_recall) for c in evaluated],
        )
        charts["calibration"] = _chart(
            "Calibration",
            "mean predicted probability",
            "share of big tippers",
            True,
            [
                (c.name, [(b.mean_prediction, b.positive_rate) for b in c.evaluation.candidate.calibration])
                for c in evaluated
            ]
            + [("perfect", [(0.0, 0.0), (1.0, 1.0)])],
        )
    for tag, title in (("loss", "Training loss"), ("auc", "Training AUC")):
        series = [
            (f"{c.name} {run}", points)
            for c in candidates
            if c.training is not None
            for run, points in sorted(c.training.curves.get(tag, {}).items())
        ]
        if series:
            charts[f"training_{tag}"] = _chart(title, "step", tag, False, series)
    return charts


def _chart(title: str, x: str, y: str, square: bool, series: list[tuple[str, Any]]) -> dict[str, Any]:
    return {
        "title": title,
        "x": x,
        "y": y,
        "square": square,
        "series": [{"label": label, "points": [list(point) for point in points]} for label, points in series],
    }


def compare_page(request: Request) -> Response:
    """Two runs' configs side by side (``?a=<run>&b=<run>``; ``only=1`` keeps the differences)."""
    explorer = request.app.state.explorer
    left, right = request.query_params.get("a", ""), request.query_params.get("b", "")
    only = request.query_params.get("only", "") == "1"
    recent = explorer.catalog.page(1, 50).rows
    rows: list[compare.ConfigRow] = []
    summaries: list[RunRow] = []
    evidence: list[tuple[list[CandidateEvidence], Any]] = []
    if left and right:
        for run_id in (left, right):
            context = contexts.find_run(explorer.store, run_id, explorer.pipeline_name)
            if context is None:
                raise HTTPException(404, f"no run {run_id}")
            summaries.append(explorer.catalog.row(context))
        rows = compare.config_rows(
            compare.run_config_json(explorer.store, left, explorer.pipeline_name),
            compare.run_config_json(explorer.store, right, explorer.pipeline_name),
        )
        for run_id in (left, right):
            outputs = nodes.run_outputs(explorer.store, run_id, explorer.pipeline_name)
            evidence.append((_candidates(explorer, run_id, outputs), _statistics(explorer, outputs)))
    return render(
        request,
        "compare.html",
        left=left,
        right=right,
        only=only,
        rows=rows,
        summaries=summaries,
        recent=recent,
        models=_model_rows(evidence) if evidence else [],
        data=_data_rows(evidence) if evidence else [],
    )


def _model_rows(evidence: list[tuple[list[CandidateEvidence], Any]]) -> list[dict[str, Any]]:
    """Each candidate of either run with both runs' metrics: ``{"name", "metric", "left", "right"}`` rows."""
    by_run = [{c.name: c for c in candidates} for candidates, _ in evidence]
    rows = []
    for name in dict.fromkeys([*by_run[0], *by_run[1]]):
        for metric in ("auc", "binary_accuracy", "calibration"):
            values = [_metric(run.get(name), metric) for run in by_run]
            rows.append({"name": name, "metric": metric, "left": values[0], "right": values[1]})
    return rows


def _metric(candidate: CandidateEvidence | None, metric: str) -> float | None:
    if candidate is None or candidate.evaluation is None:
        return None
    return candidate.evaluation.metrics.get(metric)


def _data_rows(evidence: list[tuple[list[CandidateEvidence], Any]]) -> list[dict[str, Any]]:
    """The two runs' data side by side: examples per split, and per feature of the train split its missing share
    and its mean (numbers) or number of distinct values (strings)."""
    stats = [statistics for _, statistics in evidence]
    rows = []
    splits = dict.fromkeys(s.name for run in stats if run is not None for s in run.splits)
    for split in splits:
        values = [run.split(split).examples if run is not None and run.split(split) else None for run in stats]
        rows.append({"what": f"examples in {split}", "left": values[0], "right": values[1]})
    train = [run.split("train") if run is not None else None for run in stats]
    features = dict.fromkeys(f.name for side in train if side is not None for f in side.features)
    for feature in features:
        sides = [side.feature(feature) if side is not None else None for side in train]
        rows.append({"what": f"{feature}: missing %", **_pair(sides, lambda f: round(f.missing_pct, 2))})
        numeric = any(f is not None and f.numeric for f in sides)
        label, value = ("mean", lambda f: f.mean) if numeric else ("distinct values", lambda f: f.unique)
        rows.append({"what": f"{feature}: {label}", **_pair(sides, value)})
    return rows


def _pair(sides: list[Any], value: Any) -> dict[str, Any]:
    left, right = (value(side) if side is not None else None for side in sides)
    return {"left": left, "right": right}
