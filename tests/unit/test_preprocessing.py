"""preprocessing_fn run for real by TensorFlow Transform on Beam, on a small in-memory batch."""

from __future__ import annotations

import math
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from taxi_rows import serialized_example
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from models import features
from models.preprocessing import categorical_cardinalities, preprocessing_fn

# Three trips; the third lacks its coordinates, community areas, company and trip duration.
ROWS = [
    {
        "fare": 10.0,
        "tips": 3.0,
        "trip_miles": 1.0,
        "trip_seconds": 300,
        "payment_type": "Credit Card",
        "company": "Flash Cab",
        "trip_start_hour": 9,
        "trip_start_day": 2,
        "trip_start_month": 5,
        "pickup_community_area": 8,
        "dropoff_community_area": 32,
        "pickup_census_tract": 17031081401,
        "dropoff_census_tract": 17031320100,
        "pickup_latitude": 41.89,
        "pickup_longitude": -87.63,
        "dropoff_latitude": 41.88,
        "dropoff_longitude": -87.62,
    },
    {
        "fare": 20.0,
        "tips": 1.0,
        "trip_miles": 5.0,
        "trip_seconds": 900,
        "payment_type": "Cash",
        "company": "Flash Cab",
        "trip_start_hour": 23,
        "trip_start_day": 7,
        "trip_start_month": 12,
        "pickup_community_area": 76,
        "dropoff_community_area": 8,
        "pickup_census_tract": 17031980000,
        "dropoff_census_tract": 17031081401,
        "pickup_latitude": 41.97,
        "pickup_longitude": -87.90,
        "dropoff_latitude": 41.89,
        "dropoff_longitude": -87.63,
    },
    {
        "fare": 30.0,
        "tips": 0.0,
        "trip_miles": 9.0,
        "payment_type": "Cash",
        "trip_start_hour": 0,
        "trip_start_day": 1,
        "trip_start_month": 1,
    },
]


def _feature_spec() -> dict:
    spec = {}
    for name in features.CSV_COLUMNS - set(features.UNUSED_COLUMNS):
        dtype = (
            tf.string if name in features.STRING_COLUMNS else (tf.int64 if name in features.INT_COLUMNS else tf.float32)
        )
        spec[name] = tf.io.VarLenFeature(dtype)
    return spec


def _instances() -> list[dict]:
    spec = _feature_spec()
    instances = []
    for row in ROWS:
        instance = {}
        for name, feature in spec.items():
            value = row.get(name)
            if feature.dtype == tf.string:
                instance[name] = np.array([] if value is None else [value.encode()], dtype=object)
            else:
                instance[name] = np.array([] if value is None else [value], dtype=feature.dtype.as_numpy_dtype)
        instances.append(instance)
    return instances


# The pipeline's Transform runs TFT's TF1 graph mode (``force_tf_compat_v1=True``, for speed); TF2 tracing is
# TFT's default. ``preprocessing_fn`` must give the same results in both.
@pytest.fixture(scope="module", params=[True, False], ids=["tf1-graph-mode", "tf2-tracing"])
def transformed(request: pytest.FixtureRequest) -> list[dict]:
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(_feature_spec()))
    with tempfile.TemporaryDirectory() as temp, tft_beam.Context(temp_dir=temp, force_tf_compat_v1=request.param):
        (rows, _), _ = (_instances(), metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn, output_record_batches=False
        )
    return rows


def test_outputs_every_model_input_and_the_label(transformed):
    expected = {features.transformed_name(name) for name in features.FEATURES} | {features.LABEL}
    assert all(set(row) == expected for row in transformed)


def test_label_is_tip_over_twenty_percent_of_fare(transformed):
    assert [row[features.LABEL] for row in transformed] == [1, 0, 0]


def test_numbers_are_z_scored_over_present_values_and_missing_becomes_zero(transformed):
    miles = [row[features.transformed_name("trip_miles")] for row in transformed]
    assert np.mean(miles) == pytest.approx(0.0, abs=1e-5)
    assert np.std(miles) == pytest.approx(1.0, abs=1e-4)
    seconds = [row[features.transformed_name("trip_seconds")] for row in transformed]
    assert seconds[2] == 0.0  # missing
    assert seconds[0] == pytest.approx(-1.0, abs=1e-4) and seconds[1] == pytest.approx(1.0, abs=1e-4)


def test_missing_categories_get_their_own_id_within_the_declared_cardinality(transformed):
    sizes = categorical_cardinalities()
    for row in transformed:
        for name, size in sizes.items():
            assert 0 <= row[name] < size, name
    third = transformed[2]
    assert third[features.transformed_name("pickup_latitude")] == features.BUCKET_COUNT
    assert (
        third[features.transformed_name("pickup_community_area")]
        == features.CATEGORICAL_INT_FEATURES["pickup_community_area"]
    )
    assert (
        third[features.transformed_name("pickup_census_tract")] == features.HASHED_INT_FEATURES["pickup_census_tract"]
    )


def test_vocabulary_ids_follow_frequency(transformed):
    payment = [row[features.transformed_name("payment_type")] for row in transformed]
    assert payment[1] == payment[2] == 0  # "Cash", the most frequent value, gets id 0
    assert payment[0] == 1
    company = [row[features.transformed_name("company")] for row in transformed]
    assert company[0] == company[1]
    assert not math.isnan(float(company[2]))


@pytest.fixture(scope="module")
def tf1_transform_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """The Transform graph of ``ROWS`` as the pipeline's Transform writes it (TF1 graph mode, the raw schema
    beside it), and the rows TFT's own transform pass gave."""
    import apache_beam as beam
    import tensorflow_transform as tft

    folder = tmp_path_factory.mktemp("transform")
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(_feature_spec()))
    rows_file = folder / "rows.pickle"
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(folder / "tmp"), force_tf_compat_v1=True):
        raw = pipeline | beam.Create(_instances())
        (rows, _), transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn, output_record_batches=False
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(folder / "transform_graph"))
        # The raw schema, which TFX's Transform writes beside the graph and the Trainer parses examples with.
        raw_metadata = str(folder / "transform_graph" / tft.TFTransformOutput.RAW_METADATA_DIR)
        _ = metadata | tft_beam.WriteMetadata(raw_metadata, pipeline)
        _ = rows | beam.combiners.ToList() | beam.Map(lambda every: rows_file.write_bytes(pickle.dumps(every)))
    return folder / "transform_graph", pickle.loads(rows_file.read_bytes())


def test_the_trainer_reads_raw_examples_through_the_transform_graph_as_transform_would_write_them(
    tmp_path, tf1_transform_graph
):
    """Transform writes no transformed examples (``materialize=False``): the Trainer's datasets parse ExampleGen's
    GZIP tf.Examples with the raw schema and apply the saved Transform graph. Each row and label must equal what
    TFT's own transform pass (the one ``materialize=True`` ran) gives for the same rows, through TFX's
    DataAccessor as the Trainer gets it."""
    import tensorflow_transform as tft
    from tfx.components.trainer.fn_args_utils import DataAccessor
    from tfx.components.util import tfxio_utils
    from tfx.types import standard_artifacts

    from models import trainer
    from tfx_compat import load_transform_graph

    graph_folder, collected = tf1_transform_graph
    split = tmp_path / "examples" / "Split-train"
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / "data.gz"), options="GZIP") as writer:
        for row in ROWS:
            writer.write(serialized_example(row))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    accessor = DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
        record_batch_factory=None,
        data_view_decode_fn=None,
    )
    transform_output = tft.TFTransformOutput(str(graph_folder))
    transformer = trainer._transformer(load_transform_graph(transform_output.transform_savedmodel_dir))
    dataset = trainer._dataset([str(split / "*")], accessor, transform_output, transformer, 2, one_pass=True)

    read = []
    for inputs, label in dataset:
        for row in range(len(label)):
            read.append({**{name: value[row].numpy() for name, value in inputs.items()}, features.LABEL: label[row]})
    assert len(read) == len(collected) == len(ROWS)
    by_fare = sorted(collected, key=lambda row: row[features.transformed_name("fare")])
    read.sort(key=lambda row: row[features.transformed_name("fare")])
    for expected, got in zip(by_fare, read, strict=True):
        assert set(got) == set(expected)
        for name, value in expected.items():
            assert np.asarray(got[name]).reshape(-1) == pytest.approx(np.asarray(value).reshape(-1), abs=1e-6), name


def test_one_loaded_transform_graph_serves_every_trainer_of_a_process_with_one_prune_per_set_of_inputs(
    tf1_transform_graph, monkeypatch
):
    """A local run's Trainers load the same Transform graph one after another in one process
    (``tfx_compat.load_transform_graph``): they share the loader and its traced transform, and the same features
    fed in another order (``tf.io.parse_example`` puts sparse ones first) reuse its pruned graph, with the same
    outputs."""
    import tensorflow_transform as tft
    from tensorflow.python.eager import wrap_function

    from models import trainer
    from tfx_compat import load_transform_graph

    graph_folder, _ = tf1_transform_graph
    folder = tft.TFTransformOutput(str(graph_folder)).transform_savedmodel_dir
    prunes: list[int] = []
    tensorflows_prune = wrap_function.WrappedFunction.prune

    def counted_prune(self, feeds, fetches, name=None, input_signature=None):  # noqa: ANN001, ANN202 - TensorFlow's signature
        prunes.append(len(feeds))
        return tensorflows_prune(self, feeds, fetches, name=name, input_signature=input_signature)

    monkeypatch.setattr(wrap_function.WrappedFunction, "prune", counted_prune)
    load_transform_graph.cache_clear()  # loaded afresh, through the counted prune
    try:
        loader = load_transform_graph(folder)
        assert load_transform_graph(folder) is loader  # what the next Trainer of the process gets
        assert trainer._transformer(loader) is trainer._transformer(loader)
        prunes.clear()  # TensorFlow's loading prunes the graph's own signatures too
        spec = {name: feature for name, feature in _feature_spec().items() if name in features.FEATURES}
        batch = tf.io.parse_example([serialized_example(row) for row in ROWS], spec)
        in_order = loader.apply_transform_model(dict(sorted(batch.items())))
        reversed_order = loader.apply_transform_model(dict(sorted(batch.items(), reverse=True)))
        assert len(prunes) == 1 and prunes[0] >= len(features.FEATURES)  # pruned once, for both orders
        assert set(in_order) == set(reversed_order) and features.transformed_name("fare") in in_order
        for name, value in in_order.items():
            np.testing.assert_array_equal(np.asarray(value), np.asarray(reversed_order[name]), err_msg=name)
    finally:
        load_transform_graph.cache_clear()  # no later test gets the loader made through the counted prune
