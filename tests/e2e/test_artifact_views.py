"""The run explorer's artifact views (``runs.artifacts.view``) on the real artifacts of a real run.

The session's ``first_run`` (conftest.py) supplies a 2,000-row slice's examples, statistics, schemas, transform
graph, models, blessings and pushed model; one run of its own stops at the validation gate. Each view's values are
checked against an independent source: the slice's CSV rows, TensorFlow's own parsing of the same files, the
curated schema file, and what the run's report says.
"""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from small_run import CANDIDATES, SLICE_ROWS, SMALL_RUN
from taxi_rows import read_rows, write_csv

from models import features
from pipeline import names
from pipeline.config import load_config
from runners.local import LocalRun, run_local
from runs import artifacts, examples, schemas, tfformats
from runs.nodes import ArtifactRef, node_detail
from runs.store import open_sqlite


@pytest.fixture(scope="module")
def store(first_run, shared_home):
    return open_sqlite(shared_home / "metadata.sqlite")


@pytest.fixture(scope="module")
def pipeline_root(shared_home) -> str:
    return load_config("local", SMALL_RUN, home=str(shared_home)).pipeline.root


@pytest.fixture(scope="module")
def csv_rows() -> list[dict[str, object]]:
    """The slice's rows, typed as the schema types them (None for an empty cell)."""
    _, rows = read_rows(SLICE_ROWS)
    return [{name: features.parse_cell(name, text) for name, text in row.items()} for row in rows]


def _output(store, run: LocalRun, node_id: str, key: str) -> ArtifactRef:
    return node_detail(store, run.report.run_id, node_id).outputs[key][0]


def _view(ref: ArtifactRef, pipeline_root: str) -> artifacts.ArtifactView:
    shown = artifacts.view(ref.id, ref.type_name, ref.uri, ref.properties, pipeline_root)
    assert not shown.error, shown.error
    return shown


def _same(value: object, expected: object) -> bool:
    """A value the view shows against the CSV's: floats were stored as float32."""
    if isinstance(expected, float) and isinstance(value, float):
        return math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-6)
    return value == expected


def test_importing_the_views_loads_no_tensorflow_tfma_tfdv_or_beam():
    heavy = ("tensorflow", "tensorflow_model_analysis", "tensorflow_data_validation", "apache_beam", "tfx")
    code = f"import sys, runs.artifacts; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_statistics_count_each_row_of_the_slice_once_and_agree_with_the_examples(
    store, first_run, pipeline_root, csv_rows
):
    stats = _view(_output(store, first_run, "StatisticsGen", "statistics"), pipeline_root).detail
    data = _view(_output(store, first_run, "CsvExampleGen", "examples"), pipeline_root).detail
    assert [split.name for split in stats.splits] == [split.name for split in data.splits] == ["train", "eval"]
    assert sum(split.examples for split in stats.splits) == data.total == SLICE_ROWS
    for split in stats.splits:
        assert split.examples == data.split(split.name).size > 0
        fare = split.feature("fare")
        assert fare.numeric and fare.count == split.examples and fare.missing == 0
        assert sum(bucket.count for bucket in fare.histogram) == pytest.approx(fare.count)
        assert fare.min <= fare.mean <= fare.max
        payment = split.feature("payment_type")
        assert not payment.numeric and payment.unique == len(payment.top_values)
        assert sum(value.frequency for value in payment.top_values) == split.examples

    def total(name: str, field: str) -> int:
        return sum(getattr(split.feature(name), field) for split in stats.splits)

    # Empty CSV cells: ExampleGen writes the feature with no value, and the view counts those rows as missing.
    for name in ("company", "dropoff_census_tract", "trip_seconds", "fare"):
        empty = sum(1 for row in csv_rows if row[name] is None)
        assert total(name, "missing") == empty, name
        assert total(name, "count") == SLICE_ROWS - empty, name
    company = stats.split("train").feature("company")
    assert company.missing_pct == pytest.approx(100 * company.missing / stats.split("train").examples)
    frequencies = Counter()
    for split in stats.splits:
        frequencies.update({value.value: value.frequency for value in split.feature("payment_type").top_values})
    assert frequencies == Counter(row["payment_type"] for row in csv_rows)
    fares = [row["fare"] for row in csv_rows]
    assert max(split.feature("fare").max for split in stats.splits) == pytest.approx(max(fares), rel=1e-6)
    assert min(split.feature("fare").min for split in stats.splits) == pytest.approx(min(fares), rel=1e-6)


def test_the_first_rows_of_each_split_are_rows_of_the_csv_as_tensorflow_reads_them(
    store, first_run, pipeline_root, csv_rows
):
    import tensorflow as tf

    ref = _output(store, first_run, "CsvExampleGen", "examples")
    data = _view(ref, pipeline_root).detail
    by_timestamp: dict[object, list[int]] = {}
    for index, row in enumerate(csv_rows):
        by_timestamp.setdefault(row["trip_start_timestamp"], []).append(index)
    matched = set()
    for split in data.splits:
        assert len(split.rows) == examples.PREVIEW_ROWS
        assert split.columns == sorted(features.CSV_COLUMNS)
        for row in split.rows:
            same = [
                index
                for index in by_timestamp.get(row["trip_start_timestamp"], [])
                if index not in matched and all(_same(row[name], csv_rows[index][name]) for name in split.columns)
            ]
            assert same, f"{split.name} row {row} is no row of the CSV (or one shown twice)"
            matched.add(same[0])
        # TensorFlow's own reading of the same file: the same records, the same values, bit for bit.
        path = Path(ref.uri) / split.files[0]
        records = list(tf.data.TFRecordDataset(str(path), compression_type="GZIP").as_numpy_iterator())
        assert tfformats.count_records(path) == len(records) == split.size
        for ours, record in zip(tfformats.records(path, 3), records[:3], strict=True):
            assert ours == record
            theirs = tf.train.Example.FromString(record).features.feature
            for name, values in tfformats.example_values(record).items():
                kind = theirs[name].WhichOneof("kind")  # None: ExampleGen's empty CSV cell, a feature of no kind
                expected = list(getattr(theirs[name], kind).value) if kind else []
                if kind == "bytes_list":
                    assert values == [value.decode() for value in expected]
                elif kind == "float_list":
                    assert [struct.pack("<f", v) for v in values] == [struct.pack("<f", v) for v in expected]
                else:
                    assert values == expected
    assert len(matched) == 2 * examples.PREVIEW_ROWS


def test_a_corrupt_examples_file_is_an_error_value_not_an_exception(store, first_run, pipeline_root, tmp_path):
    ref = _output(store, first_run, "CsvExampleGen", "examples")
    split = Path(ref.uri) / "Split-eval"
    source = next(split.iterdir())
    record = next(tfformats.records(source))
    broken = tmp_path / "examples" / "Split-eval" / "data_tfrecord-00000-of-00001"
    broken.parent.mkdir(parents=True)
    header = struct.pack("<Q", len(record))
    crc = struct.pack("<I", tfformats._masked_crc(header))
    damaged = bytes([record[0] ^ 0xFF]) + record[1:]
    broken.write_bytes(header + crc + damaged + struct.pack("<I", tfformats._masked_crc(record)))
    shown = artifacts.view(999_001, "Examples", str(broken.parents[1]), {"split_names": '["eval"]'}, tmp_path)
    assert not shown.refused and shown.detail is None
    assert "does not match its CRC" in shown.error


def test_the_curated_schema_shows_its_domains_and_the_inferred_one_differs(store, first_run, pipeline_root, csv_rows):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    curated = _view(_output(store, first_run, "ImportSchemaGen", "schema"), pipeline_root).detail
    schema_file = load_config("local", SMALL_RUN).schema.path
    proto = text_format.Parse(Path(schema_file).read_text(), schema_pb2.Schema())
    allowed = next(list(domain.value) for domain in proto.string_domain if domain.name == "payment_type")
    payment = curated.feature("payment_type")
    assert payment.type == "BYTES" and payment.required
    assert payment.domain_values == allowed and payment.domain == f"{len(allowed)} values"
    hour = curated.feature("trip_start_hour")
    assert (hour.domain_min, hour.domain_max, hour.domain) == (0, 23, "0 to 23")
    assert curated.feature("pickup_community_area").min_fraction == pytest.approx(0.9)
    assert curated.feature("tips").not_in_environments == ["SERVING"]
    assert set(curated.names) == set(features.CSV_COLUMNS)

    comparison = artifacts.schema_comparison(store, first_run.report.run_id, pipeline_root)
    assert comparison.kind == artifacts.SCHEMA_COMPARISON and not comparison.error
    differences = {(d.feature, d.aspect): d for d in comparison.detail.differences}
    # SchemaGen infers a string domain from the values it saw, and no numeric domain at all.
    seen = {row["payment_type"] for row in csv_rows}
    assert set(comparison.detail.inferred.feature("payment_type").domain_values) == seen
    payment_domain = differences["payment_type", schemas.DOMAIN]
    assert payment_domain.curated == f"{len(allowed)} values"
    unseen = [value for value in allowed if value not in seen]
    assert unseen and payment_domain.detail == f"only the curated schema allows {', '.join(unseen)}"
    hour_domain = differences["trip_start_hour", schemas.DOMAIN]
    assert (hour_domain.curated, hour_domain.inferred) == ("0 to 23", "")
    assert differences["company", schemas.PRESENCE].curated == "in at least 50% of examples"
    assert ("fare", schemas.PRESENCE) not in differences  # required on both sides
    assert ("fare", schemas.TYPE) not in differences and ("fare", schemas.ONLY_ONE_SIDE) not in differences


def test_the_transform_graph_shows_what_it_reads_and_writes(store, first_run, pipeline_root):
    graph = _view(_output(store, first_run, "Transform", "transform_graph"), pipeline_root).detail
    outputs = {feature.name: feature for feature in graph.outputs}
    assert set(outputs) == {*(features.transformed_name(name) for name in features.FEATURES), features.LABEL}
    assert outputs[features.transformed_name("fare")].type == "FLOAT"
    assert outputs[features.transformed_name("payment_type")].categorical
    assert all(feature.shape == [] for feature in graph.outputs)  # scalars per example
    assert {feature.name for feature in graph.inputs} == set(features.CSV_COLUMNS)
    assert set(graph.vocabularies) == set(features.VOCAB_FEATURES)
    assert all(count > 0 for count in graph.vocabularies.values())


def test_models_show_their_signatures_as_tensorflow_reads_them(store, first_run, pipeline_root):
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    ref = _output(store, first_run, names.PUSHER, "pushed_model")
    pushed = _view(ref, pipeline_root)
    assert pushed.kind == artifacts.PUSHED_MODEL
    assert pushed.detail.pushed and pushed.detail.destination == first_run.report.pushed_path
    assert pushed.detail.version and pushed.detail.destination.endswith(pushed.detail.version)
    model = pushed.detail.model
    assert {"serving_tf_example", "serving_default"} <= {signature.name for signature in model.signatures}
    raw = model.signature("serving_default")
    assert [spec.name for spec in raw.inputs] == sorted(features.FEATURES)
    for spec in raw.inputs:
        expected = "string" if spec.name in features.STRING_COLUMNS else "int64"
        expected = "float32" if spec.name in features.FLOAT_COLUMNS else expected
        assert (spec.dtype, spec.shape, spec.encoding) == (expected, [None], "dense"), spec
    assert [(spec.name, spec.dtype) for spec in model.signature("serving_tf_example").inputs] == [
        ("examples", "string")
    ]

    trained = _output(store, first_run, names.trainer(first_run.report.selected), "model")
    for saved in (model, _view(trained, pipeline_root).detail):
        folder = Path(ref.uri if saved is model else trained.uri) / saved.path
        proto = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
        graph = proto.meta_graphs[0]
        assert saved.tags == list(graph.meta_info_def.tags) == ["serve"]
        assert saved.tensorflow_version == tf.__version__
        expected = {key for key in graph.signature_def if not key.startswith("__")}
        assert {signature.name for signature in saved.signatures} == expected
        for signature in saved.signatures:
            theirs = graph.signature_def[signature.name]
            assert signature.method == theirs.method_name
            for ours, side in ((signature.inputs, theirs.inputs), (signature.outputs, theirs.outputs)):
                assert [spec.name for spec in ours] == sorted(side)
                for spec in ours:
                    info = side[spec.name]
                    assert spec.dtype == tf.as_dtype(info.dtype).name
                    assert spec.shape == [d.size if d.size >= 0 else None for d in info.tensor_shape.dim]


def test_blessings_show_each_verdict_and_the_selectors_decision(store, first_run, pipeline_root):
    selector = _view(_output(store, first_run, names.MODEL_SELECTOR, "blessing"), pipeline_root)
    assert selector.kind == artifacts.BLESSING
    blessing = selector.detail
    assert blessing.blessed is True and blessing.selection is not None
    selection = blessing.selection
    assert selection.winner == first_run.report.selected and selection.reason == first_run.report.selection_reason
    assert selection.metric == "auc"
    assert [candidate.name for candidate in selection.candidates] == list(CANDIDATES)
    scores = {c.name: c.score for c in selection.candidates if c.blessed}
    assert max(scores, key=scores.get) == selection.winner
    assert scores[selection.winner] == pytest.approx(first_run.report.candidates[selection.winner].metrics["auc"])
    winner_model = _output(store, first_run, names.trainer(selection.winner), "model")
    assert (blessing.model, blessing.model_id) == (winner_model.uri, winner_model.id)
    for name in CANDIDATES:
        evaluator = _view(_output(store, first_run, names.evaluator(name), "blessing"), pipeline_root).detail
        assert evaluator.blessed == first_run.report.candidates[name].blessed and evaluator.selection is None
    evaluation = _view(_output(store, first_run, names.evaluator(CANDIDATES[0]), "evaluation"), pipeline_root)
    assert evaluation.kind == artifacts.FILES
    assert any(entry.path.startswith("metrics") for entry in evaluation.detail.files)


def test_a_uri_outside_the_pipeline_root_is_refused(pipeline_root, tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "escape").symlink_to("/etc")
    for uri in ("/etc", f"{pipeline_root}/../../../etc", str(tmp_path / "root" / "escape"), "gs://bucket/x", ""):
        root = tmp_path / "root" if "escape" in uri else pipeline_root
        shown = artifacts.view(1, "Schema", uri, {}, root)
        assert shown.refused and shown.detail is None and shown.error, uri
    passwd = artifacts.view(1, "Examples", "/etc/passwd", {"split_names": '["train"]'}, pipeline_root)
    assert passwd.refused and "not inside the pipeline root" in passwd.error


def test_a_run_stopped_at_the_gate_shows_its_anomalies_per_feature(tmp_path, store, first_run, pipeline_root):
    clean = _view(_output(store, first_run, "ExampleValidator", "anomalies"), pipeline_root).detail
    assert clean.passes and all(split.clean for split in clean.splits) and clean.lines == []

    header, rows = read_rows(500)
    for row in rows[::10]:
        row["trip_start_hour"] = "99"  # no such hour
        row["payment_type"] = "Bitcoin"  # not in the curated domain
    config = load_config(
        "local", SMALL_RUN, home=str(tmp_path / "home"), data_root=write_csv(tmp_path / "bad", header, rows)
    )
    run = run_local(config)
    assert run.stopped_at_gate
    bad_store = open_sqlite(tmp_path / "home" / "metadata.sqlite")
    shown = _view(_output(bad_store, run, "ExampleValidator", "anomalies"), config.pipeline.root)
    anomalies = shown.detail
    assert not anomalies.passes and "stops the run" in anomalies.verdict
    assert anomalies.lines == run.report.anomalies  # the same words as the run's summary
    for split in anomalies.splits:
        by_feature = {anomaly.feature: anomaly for anomaly in split.features}
        assert set(by_feature) == {"payment_type", "trip_start_hour"}, split
        assert "Bitcoin" in by_feature["payment_type"].description
        assert all(a.description and not a.description.startswith("feature '") for a in split.features)
        assert all(a.severity == "ERROR" for a in split.features)
