"""TFMA's binary-classifier metrics computed in one pass over the eval split: ``BinaryClassifierMetrics``.

Why: in TFMA 0.47 every metric that needs labels and predictions has its own Beam combiner, and each combiner
converts every example of every slice again with ``metric_util.to_label_prediction_example_weight`` (a general
function built for multi-class, multi-output and top-k cases) before adding it up one example at a time. With the
five metrics and two plots the Evaluator reports, that conversion ran three times per example, slice and model and
was the largest single cost of the Evaluator (py-spy: 23% of it at 150,000 trips, the combiners' ``add_input`` 27%).

What changes: the metrics are TFMA's own ``ExampleCount``, ``AUC``, ``BinaryAccuracy``, ``Calibration``,
``ConfusionMatrixPlot`` and ``CalibrationPlot``, with TFMA's own metric keys and derived computations (the AUC
from the calibration histogram, the plots from it, ...). Only the combiners that feed them are replaced by one,
which converts each example once per model with TFMA's function, keeps (label, prediction, weight) as three
arrays of floats, and makes each replaced combiner's output from those arrays at the end: the same calibration
histogram buckets, confusion-matrix counts and weighted totals, added in another order (differences are at the
level of float rounding; ``bench/evaluator.py`` compares every metric and plot with TFMA's stock combiners).
Combiners this module does not know, or settings it does not handle (class weights, top-k, example ids), are left
as TFMA made them, so the results never depend on this module guessing.

Batches: the combiner also reads an extract that holds several examples of one slice at once (``BATCH_ROWS_KEY``
says how many), as ``pipeline/evaluator_udfs.py`` makes them, and then counts the examples itself (TFMA's
``ExampleCount`` counts extracts). Only this combiner reads such extracts: ``reads_batches`` tells the extractors
whether a computation is one of its.

Memory: the arrays hold 24 bytes per eval example, model and slice the example falls in (~45 MB for 300,000 eval
rows, two models and three slices each), instead of TFMA's fixed-size histograms.

The Evaluator imports this module by name (``MetricConfig.module``), so it must import wherever Evaluator runs.
"""

from __future__ import annotations

import array
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator
from tensorflow_model_analysis.metrics import (
    binary_confusion_matrices,
    calibration,
    calibration_histogram,
    example_count,
    metric_types,
    metric_util,
)
from tensorflow_model_analysis.utils import util

# TFMA keys the thresholds of a MetricConfig by the metric's name, so this class is named after the one metric the
# pipeline gates on: a threshold given on it applies to its AUC.
NAME = "auc"

# The key of an extract that holds this many examples of one slice (labels, predictions and weights with a row
# each) rather than one example; absent from TFMA's own per-example extracts.
BATCH_ROWS_KEY = "_batch_rows"


@dataclasses.dataclass(frozen=True)
class _Model:
    """Whose labels and predictions one set of arrays holds."""

    model_name: str
    output_name: str


class _Values:
    """(label, prediction, example weight) per converted example: flat arrays, cheap to append, merge, pickle."""

    __slots__ = ("labels", "predictions", "weights")

    def __init__(self) -> None:
        self.labels = array.array("d")
        self.predictions = array.array("d")
        self.weights = array.array("d")

    def extend(self, other: _Values) -> None:
        self.labels.extend(other.labels)
        self.predictions.extend(other.predictions)
        self.weights.extend(other.weights)

    def as_numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.frombuffer(self.labels, dtype=np.float64),
            np.frombuffer(self.predictions, dtype=np.float64),
            np.frombuffer(self.weights, dtype=np.float64),
        )


def _fractional_split(
    labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TFMA's ``fractional_labels``: (l, p, w) -> (0, p, w(1-l)) and (1, p, wl), tuples of weight ~0 dropped."""
    if labels.size and (labels.min() < 0.0 or labels.max() > 1.0):
        raise ValueError(f"label must be within [0, 1]: found labels from {labels.min()} to {labels.max()}")
    negative_weights = weights * (1 - labels)
    positive_weights = weights * labels
    # math.isclose(w, 0.0) with its default tolerances is w == 0.0.
    keep_negative = negative_weights != 0.0
    keep_positive = positive_weights != 0.0
    return (
        np.concatenate([np.zeros(int(keep_negative.sum())), np.ones(int(keep_positive.sum()))]),
        np.concatenate([predictions[keep_negative], predictions[keep_positive]]),
        np.concatenate([negative_weights[keep_negative], positive_weights[keep_positive]]),
    )


class _Output:
    """Makes one replaced TFMA combiner's output from its model's arrays."""

    # Whether the replaced combiner asked TFMA for fractional labels (split tuples); set by those that do.
    _fractional_labels = False

    def __init__(self, combiner: Any) -> None:
        key = combiner._key
        self.model = _Model(key.model_name, key.output_name)
        self._key = key
        self._example_weighted = combiner._example_weighted

    def _tuples(
        self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (label, prediction, weight) tuples the replaced combiner would have seen."""
        weights = weights if self._example_weighted else np.ones_like(weights)
        if self._fractional_labels:
            return _fractional_split(labels, predictions, weights)
        return labels, predictions, weights

    def output(self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> dict[Any, Any]:
        raise NotImplementedError


class _HistogramOutput(_Output):
    """``calibration_histogram._CalibrationHistogramCombiner``: weighted sums per prediction bucket."""

    def __init__(self, combiner: Any) -> None:
        super().__init__(combiner)
        self._num_buckets = combiner._num_buckets
        self._left = combiner._left
        self._range = combiner._range
        self._fractional_labels = combiner._fractional_labels

    def output(self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> dict[Any, Any]:
        labels, predictions, weights = self._tuples(labels, predictions, weights)
        # TFMA's _bucket_index: (p - left) / range * n + 1, below 0 -> 0, at or above n + 1 -> n + 1, truncated.
        position = (predictions - self._left) / self._range * self._num_buckets + 1
        index = np.clip(position, 0, self._num_buckets + 1).astype(np.int64)
        size = self._num_buckets + 2
        counts = np.bincount(index, minlength=size)
        weighted_labels = np.bincount(index, weights=labels * weights, minlength=size)
        weighted_predictions = np.bincount(index, weights=predictions * weights, minlength=size)
        weighted_examples = np.bincount(index, weights=weights, minlength=size)
        buckets = [
            calibration_histogram.Bucket(
                int(bucket),
                float(weighted_labels[bucket]),
                float(weighted_predictions[bucket]),
                float(weighted_examples[bucket]),
            )
            for bucket in np.flatnonzero(counts)
        ]
        return {self._key: buckets}


class _MatricesOutput(_Output):
    """``binary_confusion_matrices._BinaryConfusionMatrixCombiner`` at given thresholds, by TFMA's own counter."""

    def __init__(self, combiner: Any) -> None:
        super().__init__(combiner)
        self._fractional_labels = combiner._enable_fractional_labels
        self._matrices = combiner._binary_confusion_matrices

    def output(self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> dict[Any, Any]:
        labels, predictions, weights = self._tuples(labels, predictions, weights)
        # One call with every tuple: TFMA's loop adds them to each threshold's counts as it would one by one.
        accumulator = self._matrices.add_input(
            accumulator=self._matrices.create_accumulator(),
            labels=labels.tolist(),
            predictions=predictions.tolist(),
            example_weights=weights.tolist(),
            example_id=None,
        )
        return {self._key: self._matrices.extract_output(accumulator)}


class _CountOutput:
    """``example_count._ExampleCountCombiner`` without example weights: how many examples the slice holds."""

    def __init__(self, combiner: Any) -> None:
        self._keys = list(combiner._keys)

    def count(self, examples: float) -> dict[Any, Any]:
        return {key: examples for key in self._keys}


class _TotalsOutput(_Output):
    """``calibration._WeightedLabelsPredictionsExamplesCombiner``: weighted totals for the Calibration metric."""

    def output(self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> dict[Any, Any]:
        labels, predictions, weights = self._tuples(labels, predictions, weights)
        totals = calibration._WeightedLabelsPredictionsExamples()
        totals.total_weighted_examples = float(weights.sum())
        totals.total_weighted_labels = float((labels * weights).sum())
        totals.total_weighted_predictions = float((predictions * weights).sum())
        return {self._key: totals}


def _plain_binary(combiner: Any) -> bool:
    """Whether a combiner sees each example as one (label, prediction) pair: no class weights, top-k or sub key."""
    key = getattr(combiner, "_key", None)
    return (
        key is not None
        and key.sub_key is None
        and getattr(combiner, "_aggregation_type", None) is None
        and not getattr(combiner, "_class_weights", None)
    )


def _output_for(combiner: Any) -> _Output | _CountOutput | None:
    """The replacement for a TFMA combiner, or None where this module leaves it to TFMA."""
    if isinstance(combiner, example_count._ExampleCountCombiner):
        # It adds 1 per extract, or the example weights: only the unweighted count is the number of examples.
        return None if combiner._example_weighted else _CountOutput(combiner)
    if not _plain_binary(combiner):
        return None
    if isinstance(combiner, calibration_histogram._CalibrationHistogramCombiner):
        return _HistogramOutput(combiner) if combiner._prediction_based_bucketing else None
    if isinstance(combiner, binary_confusion_matrices._BinaryConfusionMatrixCombiner):
        plain = (
            combiner._extract_label_prediction_and_weight is metric_util.to_label_prediction_example_weight
            and not combiner._example_id_key
        )
        return _MatricesOutput(combiner) if plain else None
    if isinstance(combiner, calibration._WeightedLabelsPredictionsExamplesCombiner):
        return _TotalsOutput(combiner)
    return None


def _plain_values(
    element: metric_types.StandardMetricInputs, model: _Model, label_keys: frozenset[str], rows: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Labels and predictions, one of each per example, of ``rows`` unweighted examples; else None (TFMA decides).

    The common case, read directly: ``to_label_prediction_example_weight`` gives the same pairs for it but costs
    ~130 us per example (it defines a class on every call), which made it most of an Evaluator's time.
    """
    if element.example_weights is not None or model.output_name:
        return None
    labels, predictions = element.labels, element.predictions
    if model.model_name:
        # Multi-model evaluation: a label and a prediction per model name (each model's own transform computes
        # the label). TFMA looks a label key up first; where one is among the keys, leave it to TFMA.
        if isinstance(labels, dict):
            if label_keys & labels.keys():
                return None
            labels = labels.get(model.model_name)
        if not isinstance(predictions, dict):
            return None
        predictions = predictions.get(model.model_name)
    if type(labels) is not np.ndarray or type(predictions) is not np.ndarray:
        return None
    if labels.size != rows or predictions.size != rows or labels.dtype.kind not in "biuf":
        return None
    if predictions.dtype.kind != "f" or labels.ndim > 2 or predictions.ndim > 2:
        return None
    return labels.reshape(-1), predictions.reshape(-1)


@dataclasses.dataclass
class _Accumulator:
    values: dict[_Model, _Values]
    examples: float = 0.0


class _OnePassCombiner(beam.CombineFn):
    """Converts each example once per model and makes every replaced combiner's output from the arrays."""

    def __init__(self, eval_config: tfma.EvalConfig | None, outputs: Sequence[_Output | _CountOutput]) -> None:
        self._eval_config = eval_config
        self._outputs = [output for output in outputs if isinstance(output, _Output)]
        self._counts = [output for output in outputs if isinstance(output, _CountOutput)]
        self._models = sorted({output.model for output in self._outputs}, key=lambda m: (m.model_name, m.output_name))
        self._label_keys = frozenset(spec.label_key for spec in (eval_config.model_specs if eval_config else ()))

    def create_accumulator(self) -> _Accumulator:
        return _Accumulator({model: _Values() for model in self._models})

    def add_input(self, accumulator: _Accumulator, element: metric_types.StandardMetricInputs) -> _Accumulator:
        rows = element.get(BATCH_ROWS_KEY)
        accumulator.examples += 1 if rows is None else rows
        examples = None  # the batch split into examples, once, for the models that need TFMA's conversion
        for model in self._models:
            values = accumulator.values[model]
            plain = _plain_values(element, model, self._label_keys, 1 if rows is None else rows)
            if plain is not None:
                values.labels.frombytes(plain[0].astype(np.float64).tobytes())
                values.predictions.frombytes(plain[1].astype(np.float64).tobytes())
                values.weights.frombytes(np.ones(plain[0].size).tobytes())
                continue
            if examples is None:
                examples = [element] if rows is None else _split(element)
            for example in examples:
                self._add_converted(values, example, model)
        return accumulator

    def _add_converted(self, values: _Values, element: metric_types.StandardMetricInputs, model: _Model) -> None:
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=model.model_name,
            output_name=model.output_name,
            flatten=True,
            example_weighted=True,
        ):
            values.labels.append(float(label))
            values.predictions.append(float(prediction))
            values.weights.append(float(weight))

    def merge_accumulators(self, accumulators: Iterable[_Accumulator]) -> _Accumulator:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            result.examples += accumulator.examples
            for model, values in accumulator.values.items():
                result.values[model].extend(values)
        return result

    def extract_output(self, accumulator: _Accumulator) -> dict[Any, Any]:
        arrays = {model: values.as_numpy() for model, values in accumulator.values.items()}
        result: dict[Any, Any] = {}
        for count in self._counts:
            result.update(count.count(accumulator.examples))
        for output in self._outputs:
            result.update(output.output(*arrays[output.model]))
        return result


def _split(batch: metric_types.StandardMetricInputs) -> list[metric_types.StandardMetricInputs]:
    """A batch TFMA's function must convert, one example at a time, as TFMA would have unbatched it."""
    extracts = {key: value for key, value in batch.items() if key != BATCH_ROWS_KEY}
    return [metric_types.StandardMetricInputs(example) for example in util.split_extracts(extracts)]


def reads_batches(computation: metric_types.MetricComputation) -> bool:
    """Whether a computation's combiner reads extracts of several examples (``BATCH_ROWS_KEY``) correctly."""
    return isinstance(computation.combiner, _OnePassCombiner)


def stock_metrics(auc_thresholds: int, calibration_buckets: int) -> list[tfma.metrics.Metric]:
    """The TFMA metrics this class computes, as TFMA's own classes (``bench/evaluator.py`` runs them as such)."""
    return [
        tfma.metrics.ExampleCount(),
        tfma.metrics.AUC(num_thresholds=auc_thresholds),
        tfma.metrics.BinaryAccuracy(),
        tfma.metrics.Calibration(),
        tfma.metrics.ConfusionMatrixPlot(),
        tfma.metrics.CalibrationPlot(num_buckets=calibration_buckets),
    ]


def _one_pass_computations(
    auc_thresholds: int,
    calibration_buckets: int,
    name: str = NAME,
    eval_config: tfma.EvalConfig | None = None,
    schema: Any = None,
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
    sub_keys: list[Any] | None = None,
    aggregation_type: Any = None,
    class_weights: dict[int, float] | None = None,
    example_weighted: bool = False,
    query_key: str | None = None,
) -> metric_types.MetricComputations:
    """TFMA's computations of the six metrics, their label/prediction combiners replaced by one."""
    del name  # only the name thresholds are keyed by; the metrics keep their own
    computations: list[Any] = []
    for metric in stock_metrics(auc_thresholds, calibration_buckets):
        computations += metric.computations(
            eval_config=eval_config,
            schema=schema,
            model_names=model_names,
            output_names=output_names,
            sub_keys=sub_keys,
            aggregation_type=aggregation_type,
            class_weights=class_weights,
            example_weighted=example_weighted,
            query_key=query_key,
        )
    # De-duplicated and separated as TFMA's evaluator will do it again with what this returns.
    separated = metrics_plots_and_validations_evaluator._filter_and_separate_computations(computations)
    combined = separated.non_derived_computations
    others = [
        *separated.derived_computations,
        *separated.cross_slice_computations,
        *separated.ci_derived_computations,
    ]
    replaced = [(computation, _output_for(computation.combiner)) for computation in combined]
    outputs = [output for _, output in replaced if output is not None]
    if not outputs:
        return combined + others
    one_pass = metric_types.MetricComputation(
        keys=[key for computation, output in replaced if output is not None for key in computation.keys],
        # The labels, predictions and example weights, as TFMA gives every combiner, and the batch's size where
        # an extract holds several examples.
        preprocessors=[metric_types.StandardMetricInputsPreprocessor(include_filter={BATCH_ROWS_KEY: {}})],
        combiner=_OnePassCombiner(eval_config, outputs),
    )
    # Combiner computations first: derived computations read their outputs.
    return [one_pass, *(computation for computation, output in replaced if output is None), *others]


class BinaryClassifierMetrics(tfma.metrics.Metric):
    """ExampleCount, AUC, BinaryAccuracy, Calibration, ConfusionMatrixPlot and CalibrationPlot, in one pass.

    Thresholds set on its ``MetricConfig`` apply to the AUC (see ``NAME``).
    """

    def __init__(self, auc_thresholds: int = 10000, calibration_buckets: int = 1000, name: str = NAME) -> None:
        super().__init__(
            _one_pass_computations,
            auc_thresholds=auc_thresholds,
            calibration_buckets=calibration_buckets,
            name=name,
        )
