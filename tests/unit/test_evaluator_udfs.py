"""``pipeline.evaluator_udfs`` gives what TFMA's own extractors give: every metric, plot and validation.

TFMA runs for real (``tfma.run_model_analysis`` on in-process Beam, TFRecords of ``tf.Example`` on disk), once with
its default extractors and once with ours, on the same examples and eval config: two models (candidate and
baseline, their predictions read from the examples as TFMA's model-agnostic evaluation does, so no SavedModel is
needed; TFMA also computes the differences between them), an AUC threshold, and slices of the kinds TFMA makes:
overall, an integer feature missing from some examples, a string feature with a non-ASCII value, a feature with
two values in some examples (one slice per value), and two tags crossed with one payment type.
``bench/evaluator.py`` does the same through TFX's Evaluator on a real run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tensorflow_model_analysis.extractors import slice_key_extractor, unbatch_extractor

from pipeline.binary_metrics import BinaryClassifierMetrics
from pipeline.evaluator_udfs import STAGE_NAME, batches_are_enough, custom_extractors

PAYMENTS = ["Cash", "Credit Card", "Mobile", "Prcard", "Ünknown"]


def _write_examples(path: Path, count: int = 3000, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in range(count):
            label = int(rng.random() < 0.4)
            feature = {
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                # A candidate that ranks better than the baseline; values on the 0.5 threshold and the edges too.
                "p_candidate": tf.train.Feature(
                    float_list=tf.train.FloatList(value=[float(np.clip(0.35 * label + 0.65 * rng.random(), 0, 1))])
                ),
                "p_baseline": tf.train.Feature(
                    float_list=tf.train.FloatList(value=[[0.0, 0.5, 1.0][row % 3] if row % 50 == 0 else rng.random()])
                ),
                "payment_type": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[PAYMENTS[int(rng.integers(len(PAYMENTS)))].encode()])
                ),
                "tags": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a", b"b"] if row % 7 == 0 else [b"a"])),
            }
            if row % 11:  # every 11th example has no hour: it falls in no hour slice
                feature["trip_start_hour"] = tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[int(rng.integers(24))])
                )
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


def _eval_config(metrics: list[tfma.MetricConfig] | None = None) -> tfma.EvalConfig:
    # No change threshold: TFMA refuses one without a baseline SavedModel (bench/evaluator.py checks it).
    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.5}))
    metric = tfma.MetricConfig(
        class_name=BinaryClassifierMetrics.__name__,
        module=BinaryClassifierMetrics.__module__,
        config=json.dumps({"auc_thresholds": 200, "calibration_buckets": 10}),
        per_slice_thresholds=[tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)],
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(name="candidate", label_key="label", prediction_key="p_candidate"),
            tfma.ModelSpec(name="baseline", label_key="label", prediction_key="p_baseline", is_baseline=True),
        ],
        slicing_specs=[
            tfma.SlicingSpec(),
            tfma.SlicingSpec(feature_keys=["trip_start_hour"]),
            tfma.SlicingSpec(feature_keys=["payment_type"]),
            tfma.SlicingSpec(feature_keys=["tags"]),
            tfma.SlicingSpec(feature_keys=["tags"], feature_values={"payment_type": "Cash"}),
        ],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics or [metric])],
    )


def _evaluate(data: Path, output: Path, config: tfma.EvalConfig, extractors: list | None) -> dict:
    tfma.run_model_analysis(eval_config=config, data_location=str(data), output_path=str(output), extractors=extractors)
    values: dict = {}
    for kind, records in (("metrics", tfma.load_metrics(str(output))), ("plots", tfma.load_plots(str(output)))):
        for record in records:
            as_dict = json_format.MessageToDict(record)
            slice_name = json.dumps(as_dict.pop("sliceKey", {}), sort_keys=True)
            for entries in as_dict.values():
                for entry in entries:
                    values[(kind, slice_name, json.dumps(entry.get("key", {}), sort_keys=True))] = entry.get(
                        "value", {}
                    )
    validation = tfma.load_validation_result(str(output))
    values[("validation", "", "")] = json_format.MessageToDict(validation)
    return values


def _numbers(value, path: str = ""):
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _numbers(value[key], f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{path}[{index}]")
    else:
        yield path, value


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("examples") / "examples.tfrecord"
    _write_examples(path)
    return path


def test_the_slice_key_stage_is_replaced_for_the_pipelines_metrics():
    config = _eval_config()
    assert batches_are_enough(config)
    stages = [stage.stage_name for stage in custom_extractors(None, config, None)]
    assert stages[-1] == STAGE_NAME
    assert unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME not in stages


@pytest.mark.parametrize(
    "metrics, options",
    [
        # A metric whose combiner reads one example at a time.
        ([tfma.MetricConfig(class_name="MeanLabel")], None),
        # Confidence intervals resample examples: they need them one by one.
        (None, tfma.Options(compute_confidence_intervals={"value": True})),
    ],
    ids=["stock-metric", "confidence-intervals"],
)
def test_tfmas_own_extractors_run_where_batches_would_change_results(metrics, options):
    config = _eval_config(metrics)
    if options is not None:
        config.options.CopyFrom(options)
    assert not batches_are_enough(config)
    stages = [stage.stage_name for stage in custom_extractors(None, config, None)]
    assert stages[-2:] == [
        unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME,
        slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME,
    ]


def test_batches_per_slice_give_tfmas_metrics_plots_and_validation(examples, tmp_path):
    config = _eval_config()
    stock = _evaluate(examples, tmp_path / "stock", config, None)
    ours = _evaluate(examples, tmp_path / "ours", config, custom_extractors(None, config, None))

    assert sorted(stock) == sorted(ours)
    slices = {slice_name for kind, slice_name, _ in stock if kind == "metrics"}
    # overall, 24 hours, 5 payment types, 2 tags, 2 tags of Cash: every slice TFMA made, and the same in ours.
    assert len(slices) == 1 + 24 + len(PAYMENTS) + 2 + 2
    compared = 0
    for key in stock:
        stock_numbers, our_numbers = dict(_numbers(stock[key])), dict(_numbers(ours[key]))
        assert stock_numbers.keys() == our_numbers.keys(), key
        for path, value in stock_numbers.items():
            other = our_numbers[path]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert math.isclose(value, other, rel_tol=1e-6, abs_tol=1e-6), (key, path, value, other)
                compared += 1
            else:
                assert value == other, (key, path)
    assert compared > 10_000

    # The example counts are examples, not extracts: 3,000 overall, the two-valued tag in 429 (every 7th), and the
    # 273 examples without an hour in no hour slice.
    def count(slice_name: str) -> float:
        key = {"exampleWeighted": False, "modelName": "candidate", "name": "example_count"}
        return ours[("metrics", slice_name, json.dumps(key, sort_keys=True))]["doubleValue"]

    assert count("{}") == 3000
    tag_b = json.dumps({"singleSliceKeys": [{"bytesValue": "Yg==", "column": "tags"}]}, sort_keys=True)
    assert count(tag_b) == 429
    hours = [name for name in slices if "trip_start_hour" in name]
    assert sum(count(name) for name in hours) == 3000 - 273
    validation = ("validation", "", "")
    assert stock[validation] == ours[validation]


def test_the_evaluators_models_are_loaded_once_per_process_and_called_by_keyword(tmp_path):
    """TFX's Evaluator asks ``custom_eval_shared_model`` for the candidate and the baseline; after a local run's
    first push the baseline is one of the candidates, which every Evaluator of the run loads: one load serves
    them all. TFMA calls the examples signature with one positional tensor; it reaches the model by keyword."""
    from pipeline.evaluator_udfs import custom_eval_shared_model

    def save(folder: Path, weight: float) -> str:
        module = tf.Module()
        module.weight = tf.Variable(weight)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(examples: tf.Tensor) -> dict[str, tf.Tensor]:
            parsed = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([1], tf.float32)})
            return {"probabilities": parsed["x"] * module.weight}

        tf.saved_model.save(module, str(folder), signatures={"serving_default": serve})
        return str(folder)

    pushed, other = save(tmp_path / "pushed", 2.0), save(tmp_path / "other", 3.0)
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name="candidate"), tfma.ModelSpec(name="baseline", is_baseline=True)]
    )
    candidate = custom_eval_shared_model(pushed, "candidate", config).model_loader.construct_fn()
    baseline = custom_eval_shared_model(pushed, "baseline", config).model_loader.construct_fn()
    assert baseline is candidate  # the same folder: loaded once
    different = custom_eval_shared_model(other, "baseline", config).model_loader.construct_fn()
    assert different is not candidate

    example = tf.train.Example(
        features=tf.train.Features(feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.5]))})
    ).SerializeToString()
    for model, expected in ((candidate, 3.0), (different, 4.5)):
        answer = model.signatures["serving_default"](tf.constant([example]))  # positional, as TFMA calls it
        assert float(answer["probabilities"][0, 0]) == expected


def test_rows_are_sliced_by_their_values_as_tfma_slices_the_split_rows():
    """``_BatchesPerSliceFn`` looks each row's slice keys up by its values of the slicing features and splits the
    batch into rows (TFMA's ``split_extracts``) only for values not seen before: the slice keys are those of the
    split rows, for one-value, missing and two-value features, strings and numbers, and a dense column."""
    from tensorflow_model_analysis import constants
    from tensorflow_model_analysis.api import types

    from pipeline import evaluator_udfs

    def varlen(values, rows, width=1):
        positions = [sum(1 for earlier in rows[:index] if earlier == row) for index, row in enumerate(rows)]
        return types.VarLenTensorValue(
            values=np.asarray(values),
            indices=np.asarray(list(zip(rows, positions, strict=True))).reshape(-1, 2),
            dense_shape=np.asarray([5, width]),
        )

    features = {
        "trip_start_hour": varlen([3, 5, 3, 3], [0, 2, 3, 4]),  # row 1 has no hour
        "payment_type": varlen(
            np.asarray([b"Cash", "Ünknown".encode(), b"Cash", b"Cash", b"Cash"], object), [0, 1, 2, 3, 4]
        ),
        "tags": varlen(np.asarray([b"a", b"a", b"b", b"a", b"a", b"b"], object), [0, 1, 1, 2, 3, 4], width=2),
        "ignored": np.arange(5),
    }
    batch = {constants.FEATURES_KEY: features}
    slicer = evaluator_udfs._BatchesPerSliceFn(_eval_config())
    slicer.setup()
    slim = {constants.FEATURES_KEY: evaluator_udfs._only(features, slicer._slicing_features)}
    values = evaluator_udfs._row_values(slim, 5)
    assert values is not None and values[0] == values[3] and len(set(values)) == 4  # rows 0 and 3 are alike

    by_values = slicer._row_slice_keys(batch, 5)
    assert len(slicer._slice_keys_by_values) == 4  # one TFMA slicing per distinct row
    assert by_values == slicer._split_row_slice_keys(slim, 5)
    assert (("tags", "b"),) in by_values[1] and (("trip_start_hour", 3),) not in by_values[1]
    assert slicer._row_slice_keys(batch, 5) == by_values  # all from memory now

    dense = {constants.FEATURES_KEY: {"trip_start_hour": np.asarray([[3], [4], [3], [3], [7]])}}
    dense_slim = {constants.FEATURES_KEY: dense[constants.FEATURES_KEY]}
    assert slicer._row_slice_keys(dense, 5) == slicer._split_row_slice_keys(dense_slim, 5)
    assert evaluator_udfs._row_values({constants.FEATURES_KEY: {"x": [1, 2, 3, 4, 5]}}, 5) is None  # not read here
