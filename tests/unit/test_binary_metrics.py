"""``pipeline.binary_metrics`` gives what TFMA's own metric classes give, key for key and value for value.

Both sets of computations are made by TFMA for the same settings and run the way TFMA's evaluator runs them
(each combiner over the examples in two parts, the parts merged, then the derived computations in order), on
examples shaped as TFMA hands them to metrics: a label and a prediction per model in a two-model evaluation, or
one model with example weights (the path this module leaves to TFMA's own conversion), fractional labels, and
predictions exactly on the 0.5 threshold and on the histogram's edges. ``bench/evaluator.py`` does the same
through TFX's Evaluator on a real run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import json_format, message
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as evaluator
from tensorflow_model_analysis.metrics import metric_types

from pipeline.binary_metrics import BATCH_ROWS_KEY, NAME, BinaryClassifierMetrics, stock_metrics
from pipeline.evaluation import AUC_THRESHOLDS, CALIBRATION_BUCKETS


def _run(computations: list, inputs: list[metric_types.StandardMetricInputs]) -> dict:
    """TFMA's evaluator steps without Beam: combine (in two merged parts), then derived computations in order."""
    separated = evaluator._filter_and_separate_computations(computations)
    results: dict = {}
    half = len(inputs) // 2
    for computation in separated.non_derived_computations:
        combiner = computation.combiner
        combiner.setup()
        parts = []
        for part in (inputs[:half], inputs[half:]):
            accumulator = combiner.create_accumulator()
            for element in part:
                accumulator = combiner.add_input(accumulator, element)
            parts.append(accumulator)
        results.update(combiner.extract_output(combiner.merge_accumulators(parts)))
    for computation in separated.derived_computations:
        results.update(computation.result(results))
    return {key: value for key, value in results.items() if not key.name.startswith("_")}


def _numbers(value) -> list[float]:
    if isinstance(value, message.Message):
        value = json_format.MessageToDict(value)
    if isinstance(value, dict):
        return [n for key in sorted(value) for n in _numbers(value[key])]
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in _numbers(item)]
    if isinstance(value, str):
        return [float(value)] if value.replace(".", "", 1).replace("-", "", 1).isdigit() else []
    return [float(value)]


def _computations(metrics: list, model_names: list[str], eval_config: tfma.EvalConfig, example_weighted: bool) -> list:
    computations = []
    for metric in metrics:
        computations += metric.computations(
            eval_config=eval_config, model_names=model_names, example_weighted=example_weighted
        )
    return computations


def _examples(rng, count, model_names, *, weights=False, fractional=False):
    labels = rng.random(count) if fractional else (rng.random(count) < 0.3).astype(np.int64)
    predictions = {name: rng.random(count).astype(np.float32) for name in model_names}
    for name in model_names:  # edges: the accuracy threshold, both ends of the histogram
        predictions[name][:3] = [0.5, 0.0, 1.0]
    examples = []
    for i in range(count):
        if model_names == [""]:
            extracts = {"labels": np.array([labels[i]]), "predictions": np.array([predictions[""][i]])}
        else:
            extracts = {
                "labels": {name: np.array([labels[i]]) for name in model_names},
                "predictions": {name: np.array([predictions[name][i]]) for name in model_names},
            }
        extracts["example_weights"] = np.array([rng.integers(1, 4)], dtype=np.float32) if weights else None
        examples.append(metric_types.StandardMetricInputs(extracts))
    return examples


def _batched(examples: list, size: int) -> list:
    """The examples in extracts of ``size`` rows each, as ``pipeline/evaluator_udfs.py`` hands them on."""

    def stack(values: list):
        if values[0] is None:
            return None
        if isinstance(values[0], dict):
            return {key: stack([value[key] for value in values]) for key in values[0]}
        return np.concatenate(values)

    batches = []
    for start in range(0, len(examples), size):
        part = examples[start : start + size]
        extracts = {
            key: stack([example[key] for example in part]) for key in ("labels", "predictions", "example_weights")
        }
        extracts[BATCH_ROWS_KEY] = len(part)
        batches.append(metric_types.StandardMetricInputs(extracts))
    return batches


@pytest.mark.parametrize("batched", [False, True], ids=["per-example", "batches"])
@pytest.mark.parametrize(
    ("model_names", "weights", "fractional"),
    [(["candidate", "baseline"], False, False), ([""], True, False), ([""], False, True)],
    ids=["two-models", "example-weights", "fractional-labels"],
)
def test_one_pass_metrics_equal_tfmas_own(model_names, weights, fractional, batched):
    """TFMA's combiners see one example at a time; ours the same, or batches of rows (with example weights, the
    path where each batch is split back into examples for TFMA's own conversion)."""
    specs = [tfma.ModelSpec(name=name, label_key="big_tipper") for name in model_names if name]
    eval_config = tfma.EvalConfig(model_specs=specs or [tfma.ModelSpec(label_key="big_tipper")])
    examples = _examples(np.random.default_rng(7), 2000, model_names, weights=weights, fractional=fractional)

    stock_computations = _computations(
        stock_metrics(AUC_THRESHOLDS, CALIBRATION_BUCKETS), model_names, eval_config, example_weighted=weights
    )
    stock = _run(stock_computations, examples)
    metric = BinaryClassifierMetrics(auc_thresholds=AUC_THRESHOLDS, calibration_buckets=CALIBRATION_BUCKETS)
    one_pass_inputs = _batched(examples, 64) if batched else examples
    one_pass = _run(_computations([metric], model_names, eval_config, example_weighted=weights), one_pass_inputs)

    assert sorted(map(str, one_pass)) == sorted(map(str, stock))
    names = {key.name for key in stock}
    assert {"example_count", "auc", "binary_accuracy", "calibration", "confusion_matrix_plot"} <= names
    for key, value in stock.items():
        expected, found = _numbers(value), _numbers(one_pass[key])
        assert len(expected) == len(found), key
        for a, b in zip(expected, found, strict=True):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (key, a, b)


def test_the_metric_config_thresholds_judge_the_auc():
    """TFMA keys a MetricConfig's thresholds by the metric's name: ours is the AUC's."""
    assert BinaryClassifierMetrics().name == NAME == tfma.metrics.AUC().name
