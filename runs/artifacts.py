"""Artifacts shown as a person wants to see them: the run explorer's artifact page asks ``view`` for any artifact and
gets plain data back (frozen dataclasses of numbers, strings, lists and dicts), never a proto.

``view`` picks the reader by the artifact's type name: examples (``runs.examples``), statistics
(``runs.statistics``), schemas and transform graphs (``runs.schemas``), anomalies and the gate's verdict
(``runs.validation``), models (``runs.saved_models``); blessings and pushed models come from ML Metadata's
properties; the evaluation and training artifacts have their own readers and pages, so here they get a list of
their files. Readers that parse files are cached per artifact (id and uri): an artifact never changes once ML
Metadata lists it (TFX publishes outputs when their execution succeeds).

Safety: the uri comes from ML Metadata, and a crafted row must not make the server read any file it names. ``view``
reads only under the pipeline root: a uri that does not resolve to a path inside it is refused with an error
value, as is a remote (``gs://``) one. Importing this module loads no TensorFlow, TFMA, TFDV or Beam.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from google.protobuf import message, text_format

import tfx_compat
from pipeline import names
from runs import examples, nodes, saved_models, schemas, statistics, validation

# What a view holds, by reader; the page picks its template by ``ArtifactView.kind``.
EXAMPLES, STATISTICS, SCHEMA, SCHEMA_COMPARISON = "examples", "statistics", "schema", "schema_comparison"
ANOMALIES, TRANSFORM_GRAPH, MODEL, BLESSING = "anomalies", "transform_graph", "model", "blessing"
PUSHED_MODEL, FILES = "pushed_model", "files"

# The nodes whose Schema outputs the comparison puts side by side (pipeline/pipeline.py names them so; the curated
# one is CuratedSchemaGen's NODE_ID, which lives in a module that imports TFX).
CURATED_SCHEMA_NODE, INFERRED_SCHEMA_NODE, SCHEMA_OUTPUT = "ImportSchemaGen", "SchemaGen", "schema"
PUSHED_VERSION_PROPERTY = "pushed_version"  # tfx/components/pusher/executor.py, beside tfx_compat's two
SPLIT_NAMES_PROPERTY = "split_names"
PAYLOAD_FORMAT_PROPERTY = "payload_format"

# How many files a folder summary lists.
MAX_FILES = 200

# What reading an artifact's files can raise: missing or unreadable files, a truncated or corrupt gzip stream, bad
# framing, a corrupt proto.
_READ_ERRORS = (OSError, EOFError, zlib.error, ValueError, message.DecodeError, text_format.ParseError)


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the artifact's folder
    bytes: int


@dataclasses.dataclass(frozen=True)
class FolderSummary:
    """An artifact shown as its files: evaluation and training artifacts, whose pages are elsewhere."""

    files: list[FileEntry]
    total_bytes: int
    more_files: int = 0  # files beyond the first MAX_FILES, not listed


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    """One candidate as the ModelSelector scored it (``pipeline.components.model_selection.CandidateScore``)."""

    name: str
    blessed: bool
    score: float | None
    baseline_score: float | None = None
    failures: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Selection:
    winner: str  # "" when no candidate was blessed
    metric: str
    reason: str
    candidates: list[CandidateScore]


@dataclasses.dataclass(frozen=True)
class BlessingView:
    blessed: bool | None  # None when the artifact does not say
    model: str = ""  # the model it blesses (the Evaluator's candidate, or the selector's winner)
    model_id: int | None = None
    selection: Selection | None = None  # the ModelSelector's record; None for an Evaluator's blessing


@dataclasses.dataclass(frozen=True)
class PushedModelView:
    pushed: bool
    destination: str = ""
    version: str = ""
    model: saved_models.SavedModelView | None = None  # the pushed copy's signatures


Detail = (
    examples.ExamplesView
    | statistics.StatisticsView
    | schemas.SchemaView
    | schemas.SchemaComparison
    | schemas.TransformGraphView
    | validation.AnomaliesView
    | saved_models.SavedModelView
    | BlessingView
    | PushedModelView
    | FolderSummary
)


@dataclasses.dataclass(frozen=True)
class ArtifactView:
    """One artifact in human form: ``detail`` is the reader's dataclass for ``kind``, or None with ``error`` set."""

    artifact_id: int
    type_name: str
    uri: str
    kind: str
    detail: Detail | None = None
    error: str = ""  # why there is no detail: the uri was refused, or the files could not be read
    refused: bool = False  # the uri is outside the pipeline root (or remote): nothing was read

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def view(
    artifact_id: int,
    type_name: str,
    uri: str,
    properties: Mapping[str, Any],
    pipeline_root: str | Path,
    *,
    rows: int = examples.PREVIEW_ROWS,
) -> ArtifactView:
    """The artifact in human form, by its type; an error value (never an exception) when it cannot be shown.

    Args:
        artifact_id: the artifact's ML Metadata id.
        type_name: its ML Metadata type's name (``Examples``, ``ExampleStatistics``, ``Schema``, ...).
        uri: its folder, as ML Metadata records it.
        properties: its properties and custom properties by name (``runs.nodes.ArtifactRef.properties``: values as
            text, JSON for structs; plain values or ML Metadata ``Value`` protos are taken too).
        pipeline_root: the pipeline root of the run's config; nothing outside it is read.
        rows: how many rows of each split an Examples view shows.

    Returns:
        An ArtifactView whose ``kind`` names the reader and whose ``detail`` holds what it read; with ``refused``
        for a uri outside the pipeline root, and ``error`` saying why when there is no detail.
    """
    kind, reader = _READERS.get(type_name, (FILES, _files))
    refusal, path = checked_path(uri, pipeline_root)
    if refusal:
        return ArtifactView(artifact_id, type_name, uri, kind, error=refusal, refused=True)
    plain = {key: _plain(value) for key, value in properties.items()}
    try:
        detail = reader(artifact_id, path, plain, rows)
    except _READ_ERRORS as error:
        return ArtifactView(artifact_id, type_name, uri, kind, error=f"could not read {uri}: {_reason(error)}")
    return ArtifactView(artifact_id, type_name, uri, kind, detail)


def schema_comparison(store: Any, run_id: str, pipeline_root: str | Path) -> ArtifactView:
    """The run's curated schema (ImportSchemaGen's) and inferred schema (SchemaGen's) side by side, with what differs.

    Args:
        store: a read-only ML Metadata store (``runs.store``).
        run_id: the run.
        pipeline_root: the pipeline root of the run's config; nothing outside it is read.

    Returns:
        An ArtifactView of kind ``schema_comparison`` about the curated schema's artifact, whose ``detail`` is a
        ``schemas.SchemaComparison``; an error value when the run lacks either schema or one cannot be read.
    """
    refs = {}
    for node_id in (CURATED_SCHEMA_NODE, INFERRED_SCHEMA_NODE):
        try:
            outputs = nodes.node_detail(store, run_id, node_id).outputs.get(SCHEMA_OUTPUT, [])
        except LookupError:
            outputs = []
        if not outputs:
            return ArtifactView(0, "Schema", "", SCHEMA_COMPARISON, error=f"run {run_id} has no schema from {node_id}")
        refs[node_id] = outputs[0]
    curated, inferred = refs[CURATED_SCHEMA_NODE], refs[INFERRED_SCHEMA_NODE]
    views = [view(ref.id, ref.type_name, ref.uri, ref.properties, pipeline_root) for ref in (curated, inferred)]
    failed = next((v for v in views if v.error), None)
    if failed is not None:
        return dataclasses.replace(failed, kind=SCHEMA_COMPARISON)
    detail = schemas.comparison(views[0].detail, views[1].detail)
    return ArtifactView(curated.id, curated.type_name, curated.uri, SCHEMA_COMPARISON, detail)


def split_names(uri: str | Path, properties: Mapping[str, Any]) -> tuple[str, ...]:
    """The artifact's splits: its ``split_names`` property (a JSON list), else its ``Split-*`` folders."""
    text = properties.get(SPLIT_NAMES_PROPERTY)
    if text:
        return tuple(json.loads(text))
    folders = Path(uri).glob("Split-*") if Path(uri).is_dir() else []
    return tuple(sorted(folder.name.removeprefix("Split-") for folder in folders if folder.is_dir()))


def checked_path(uri: str, pipeline_root: str | Path) -> tuple[str, str]:
    """(why the uri is refused, "") or ("", the resolved local path inside the pipeline root)."""
    if not uri:
        return "the artifact has no uri", ""
    if "://" in uri or "://" in str(pipeline_root):
        return f"refused: only local artifacts are shown, and {uri} is not one", ""
    root = Path(pipeline_root).resolve()
    path = Path(uri).resolve()
    if not path.is_relative_to(root):
        return f"refused: {uri} is not inside the pipeline root {root}", ""
    return "", str(path)


def _plain(value: Any) -> Any:
    """A property value as plain Python: ML Metadata ``Value`` protos unwrapped, structs as JSON text."""
    if not isinstance(value, message.Message):
        return value
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf import json_format

        return json.dumps(json_format.MessageToDict(value.struct_value))
    return getattr(value, kind) if kind and kind != "proto_value" else ""


def _reason(error: BaseException) -> str:
    if isinstance(error, FileNotFoundError) and error.filename:
        return f"{error.filename} does not exist (did the step that writes it finish?)"
    return str(error) or type(error).__name__


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _examples(artifact_id: int, path: str, properties: dict[str, Any], rows: int) -> examples.ExamplesView:
    splits = split_names(path, properties)
    return examples.read_examples(artifact_id, path, splits, properties.get(PAYLOAD_FORMAT_PROPERTY) or "", rows)


def _statistics(artifact_id: int, path: str, properties: dict[str, Any], rows: int) -> statistics.StatisticsView:
    return statistics.read_statistics(artifact_id, path, split_names(path, properties))


def _schema(artifact_id: int, path: str, properties: dict[str, Any], rows: int) -> schemas.SchemaView:
    return schemas.read_schema(artifact_id, path)


def _anomalies(artifact_id: int, path: str, properties: dict[str, Any], rows: int) -> validation.AnomaliesView:
    return validation.read_anomalies(artifact_id, path, split_names(path, properties))


def _transform_graph(artifact_id: int, path: str, properties: dict[str, Any], rows: int) -> schemas.TransformGraphView:
    return schemas.read_transform_graph(artifact_id, path)


def _model(artifact_id: int, path: str, properties: dict[str, Any], rows: int) -> saved_models.SavedModelView:
    return saved_models.read_saved_model(artifact_id, path)


def _blessing(artifact_id: int, path: str, properties: dict[str, Any], rows: int) -> BlessingView:
    """An Evaluator's verdict on its candidate, or the ModelSelector's decision with every candidate's score."""
    blessed = _int(properties.get(names.BLESSED))
    selection = None
    if names.SELECTION_METRIC in properties:
        scores = json.loads(properties.get(names.SELECTION_SCORES) or "[]")
        selection = Selection(
            winner=str(properties.get(names.SELECTION_WINNER) or ""),
            metric=str(properties[names.SELECTION_METRIC]),
            reason=str(properties.get(names.SELECTION_REASON) or ""),
            candidates=[
                CandidateScore(
                    name=str(score.get("name", "")),
                    blessed=bool(score.get("blessed")),
                    score=score.get("score"),
                    baseline_score=score.get("baseline_score"),
                    failures=list(score.get("failures") or []),
                )
                for score in scores
            ],
        )
    return BlessingView(
        blessed=None if blessed is None else bool(blessed),
        model=str(properties.get(names.CURRENT_MODEL) or ""),
        model_id=_int(properties.get(names.CURRENT_MODEL_ID)),
        selection=selection,
    )


def _pushed_model(artifact_id: int, path: str, properties: dict[str, Any], rows: int) -> PushedModelView:
    """Whether the Pusher pushed, where to and as which version; a pushed model's signatures from its copy here."""
    pushed = bool(_int(properties.get(tfx_compat.PUSHED_PROPERTY)))
    model = saved_models.read_saved_model(artifact_id, path) if pushed else None
    return PushedModelView(
        pushed=pushed,
        destination=str(properties.get(tfx_compat.PUSHED_DESTINATION_PROPERTY) or ""),
        version=str(properties.get(PUSHED_VERSION_PROPERTY) or ""),
        model=model,
    )


def _files(artifact_id: int, path: str, properties: dict[str, Any], rows: int) -> FolderSummary:
    return _folder_summary(artifact_id, path)


@functools.lru_cache(maxsize=64)
def _folder_summary(artifact_id: int, path: str) -> FolderSummary:
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(2, "no such folder", path)
    found = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    entries = [FileEntry(str(p.relative_to(root)) if p != root else p.name, p.stat().st_size) for p in found]
    return FolderSummary(entries[:MAX_FILES], sum(e.bytes for e in entries), max(len(entries) - MAX_FILES, 0))


_Reader = Callable[[int, str, dict[str, Any], int], Any]
_READERS: dict[str, tuple[str, _Reader]] = {
    "Examples": (EXAMPLES, _examples),
    "ExampleStatistics": (STATISTICS, _statistics),
    "Schema": (SCHEMA, _schema),
    "ExampleAnomalies": (ANOMALIES, _anomalies),
    "TransformGraph": (TRANSFORM_GRAPH, _transform_graph),
    "Model": (MODEL, _model),
    "ModelBlessing": (BLESSING, _blessing),
    "PushedModel": (PUSHED_MODEL, _pushed_model),
}
