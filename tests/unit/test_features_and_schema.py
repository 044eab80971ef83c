"""models/features.py is the one source of feature names: the bundled data and the curated schema agree with it."""

from __future__ import annotations

import csv

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from models import features
from pipeline.config import PROJECT_DIR


def _schema() -> schema_pb2.Schema:
    return text_format.Parse((PROJECT_DIR / "schema" / "schema.pbtxt").read_text(), schema_pb2.Schema())


def test_bundled_csv_has_exactly_the_declared_columns():
    with (PROJECT_DIR / "data" / "taxi.csv").open() as handle:
        header = next(csv.reader(handle))
        rows = sum(1 for _ in handle)
    assert set(header) == features.CSV_COLUMNS
    assert rows == 15002


def test_feature_groups_do_not_overlap_and_exclude_the_label_source():
    groups = [
        features.DENSE_FLOAT_FEATURES,
        features.BUCKET_FEATURES,
        tuple(features.CATEGORICAL_INT_FEATURES),
        tuple(features.HASHED_INT_FEATURES),
        features.VOCAB_FEATURES,
    ]
    flat = [name for group in groups for name in group]
    assert len(flat) == len(set(flat)) == len(features.FEATURES)
    assert features.LABEL_SOURCE not in flat
    assert set(features.SLICE_FEATURES) <= features.CSV_COLUMNS


def test_curated_schema_declares_every_column_with_its_type():
    expected_type = {
        **{name: schema_pb2.BYTES for name in features.STRING_COLUMNS},
        **{name: schema_pb2.INT for name in features.INT_COLUMNS},
        **{name: schema_pb2.FLOAT for name in features.FLOAT_COLUMNS},
    }
    declared = {feature.name: feature.type for feature in _schema().feature}
    assert declared == expected_type


def test_label_source_is_absent_at_serving_time():
    schema = _schema()
    tips = next(feature for feature in schema.feature if feature.name == features.LABEL_SOURCE)
    assert list(tips.not_in_environment) == ["SERVING"]
    assert set(schema.default_environment) == {"TRAINING", "SERVING"}
