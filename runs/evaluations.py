"""A candidate's evaluation as the run explorer's Models page shows it: the metrics of the candidate and of the
baseline, ROC and precision-recall curves, a calibration plot and the confusion matrix at 0.5, all on the overall
slice, and TFMA's verdict on the thresholds (each failed one in words and by how much).

The Evaluator writes TFMA's results into its ModelEvaluation folder as TFRecord files of TFMA's messages:
``metrics*`` (``MetricsForSlice``), ``plots*`` (``PlotsForSlice``, present when the eval config asks for
``ConfusionMatrixPlot`` and ``CalibrationPlot``, as ``pipeline.evaluation`` does) and ``validations*``
(``ValidationResult``). ``tfma.load_metrics`` and its siblings read them but need TFMA imported, which loads
TensorFlow and Beam (7-11 s here) before the first Models page could show. So the records are read with
``runs.tfformats`` and parsed with TFMA's own message definitions, taken from the serialized descriptors in its
generated ``*_pb2.py`` modules into a private descriptor pool without running the package (whose ``__init__``
imports everything). What the records mean is ``pipeline.components.evaluation_results``'s, shared with the model
selector and the run summary, so every place reports the same numbers and the same words.
``tests/e2e/test_model_evidence.py`` checks this reading against ``tfma.load_*``.

Local paths only (the pipeline root), like the other readers; a result is cached per artifact: artifacts never
change once ML Metadata lists them. Importing this module loads no TensorFlow, TFMA or Beam.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

from pipeline.components.evaluation_results import (
    BASELINE_MODEL,
    ValidationOutcome,
    metrics_of,
    validation_of,
)
from runs import tfformats

# The threshold of the confusion matrix shown: the one the served model's callers use to call a trip a big tip.
CONFUSION_THRESHOLD = 0.5
# How close a plot's threshold must be to the one asked for: TFMA's are i / 1000, computed in floating point.
_THRESHOLD_TOLERANCE = 1e-9

# TFMA's generated modules, in dependency order, and the package its messages are declared in.
_TFMA_PROTO_MODULES = ("config_pb2", "metrics_for_slice_pb2", "validation_result_pb2")
_TFMA_PACKAGE = "tensorflow_model_analysis"


@dataclasses.dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of the eval examples at one threshold: a prediction above it says "big tipper"."""

    threshold: float
    true_positives: float
    false_positives: float
    true_negatives: float
    false_negatives: float
    examples: float  # the four counts' sum
    accuracy: float | None  # None when there are no examples
    precision: float | None  # None when nothing is predicted positive
    recall: float | None  # None when no example is positive


@dataclasses.dataclass(frozen=True)
class CalibrationBucket:
    """The eval examples whose predicted probability lies in [low, high): how many, and how often they were
    positive against how likely the model said they were."""

    low: float
    high: float
    examples: float
    mean_prediction: float
    positive_rate: float


@dataclasses.dataclass(frozen=True)
class ModelCurves:
    """One model's curves on the overall slice. The ROC and precision-recall points run from the highest threshold
    to the lowest, so ``thresholds[i]`` is the threshold of ``roc[i]`` and ``precision_recall[i]``."""

    thresholds: list[float]
    roc: list[tuple[float, float]]  # (false positive rate, recall): from (0, 0) to (1, 1)
    precision_recall: list[tuple[float, float]]  # (recall, precision)
    calibration: list[CalibrationBucket]  # the buckets that hold examples, by predicted probability
    confusion: ConfusionMatrix | None  # at CONFUSION_THRESHOLD; None if the plot has no matrix there


@dataclasses.dataclass(frozen=True)
class EvaluationView:
    """What one Evaluator found about its candidate (and about the baseline it compared it with)."""

    metrics: dict[str, float]  # the candidate's on the overall slice: auc, binary_accuracy, calibration, ...
    baseline_metrics: dict[str, float]  # the baseline's; empty without a baseline (a pipeline's first push)
    slice_metrics: dict[str, dict[str, float]]  # the candidate's, by slice ("trip_start_hour=7")
    candidate: ModelCurves | None  # None when the Evaluator wrote no plots (an eval config without them)
    baseline: ModelCurves | None
    validation: ValidationOutcome  # passed, and each failed threshold; passed is None without a result


@functools.lru_cache(maxsize=64)
def read_evaluation(artifact_id: int, uri: str, threshold: float = CONFUSION_THRESHOLD) -> EvaluationView:
    """The ModelEvaluation artifact in the local folder ``uri``, as the Models page shows it.

    Args:
        artifact_id: the artifact's ML Metadata id; with ``uri``, the cache key.
        uri: the artifact's folder.
        threshold: the threshold of the confusion matrix; one of the plot's (multiples of 0.001).

    Returns:
        Metrics, curves and the validation verdict; parts the Evaluator did not write are empty or None.

    Raises:
        FileNotFoundError: the folder does not exist. A corrupt file raises ValueError or protobuf's DecodeError.
    """
    folder = Path(uri)
    if not folder.is_dir():
        raise FileNotFoundError(2, "no such folder", uri)
    metrics = metrics_of(_read(folder, "metrics", "MetricsForSlice"))
    curves = {name: _curves(plot, threshold) for name, plot in _overall_plots(folder).items()}
    validations = list(_read(folder, "validations", "ValidationResult"))
    return EvaluationView(
        metrics=metrics.candidate,
        baseline_metrics=metrics.baseline,
        slice_metrics=metrics.slices,
        candidate=next((c for name, c in curves.items() if name != BASELINE_MODEL), None),
        baseline=curves.get(BASELINE_MODEL),
        validation=validation_of(validations[0]) if validations else ValidationOutcome(passed=None),
    )


def _overall_plots(folder: Path) -> dict[str, Any]:
    """Each model's ``PlotData`` on the overall slice, by model name. TFMA puts every plot of one model and slice
    into one ``PlotData`` (the confusion matrices and the calibration buckets side by side)."""
    plots = {}
    for record in _read(folder, "plots", "PlotsForSlice"):
        if record.slice_key.single_slice_keys or record.HasField("cross_slice_key"):
            continue
        for entry in record.plot_keys_and_values:
            plots[entry.key.model_name] = entry.value
    return plots


def _curves(plot: Any, threshold: float) -> ModelCurves:
    matrices = sorted(plot.confusion_matrix_at_thresholds.matrices, key=lambda m: m.threshold, reverse=True)
    at_threshold = [m for m in matrices if abs(m.threshold - threshold) <= _THRESHOLD_TOLERANCE]
    return ModelCurves(
        thresholds=[m.threshold for m in matrices],
        roc=[(m.false_positive_rate, m.recall) for m in matrices],
        precision_recall=[(m.recall, m.precision) for m in matrices],
        calibration=[
            _bucket(b) for b in plot.calibration_histogram_buckets.buckets if b.num_weighted_examples.value > 0
        ],
        confusion=_confusion(at_threshold[0]) if at_threshold else None,
    )


def _confusion(matrix: Any) -> ConfusionMatrix:
    tp, fp = matrix.true_positives, matrix.false_positives
    tn, fn = matrix.true_negatives, matrix.false_negatives
    examples = tp + fp + tn + fn
    return ConfusionMatrix(
        threshold=matrix.threshold,
        true_positives=tp,
        false_positives=fp,
        true_negatives=tn,
        false_negatives=fn,
        examples=examples,
        accuracy=(tp + tn) / examples if examples else None,
        precision=tp / (tp + fp) if tp + fp else None,
        recall=tp / (tp + fn) if tp + fn else None,
    )


def _bucket(bucket: Any) -> CalibrationBucket:
    """One histogram bucket; the two open-ended ones TFMA adds (below 0, from 1 up) are clipped to [0, 1]."""
    examples = bucket.num_weighted_examples.value
    return CalibrationBucket(
        low=max(bucket.lower_threshold_inclusive, 0.0),
        high=min(bucket.upper_threshold_exclusive, 1.0),
        examples=examples,
        mean_prediction=bucket.total_weighted_refined_prediction.value / examples,
        positive_rate=bucket.total_weighted_label.value / examples,
    )


def _read(folder: Path, prefix: str, message: str) -> Iterator[Any]:
    """The records of TFMA's ``<prefix>*`` files, parsed as ``message``; TFMA's own loaders look for
    ``<prefix>*.tfrecord`` first and fall back to any suffix (older outputs, the validation result)."""
    files = sorted(folder.glob(f"{prefix}*.tfrecord")) or sorted(folder.glob(f"{prefix}*"))
    parse = tfma_message(message).FromString
    for path in files:
        for record in tfformats.records(path):
            yield parse(record)


@functools.cache
def tfma_message(name: str) -> Any:
    """TFMA's message class ``name`` (``MetricsForSlice``, ``PlotsForSlice``, ``ValidationResult``, ...), built from
    TFMA's own definitions without importing TFMA; fields and numbers are TFMA's exactly."""
    return message_factory.GetMessageClass(_tfma_pool().FindMessageTypeByName(f"{_TFMA_PACKAGE}.{name}"))


@functools.cache
def _tfma_pool() -> descriptor_pool.DescriptorPool:
    """A private pool (so its classes never clash with TFMA's in a process that has imported it) holding TFMA's
    ``.proto`` files, read from the ``AddSerializedFile(b'...')`` call protoc generates in each ``*_pb2.py``."""
    spec = importlib.util.find_spec(_TFMA_PACKAGE)  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{_TFMA_PACKAGE} is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "proto"
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)  # TFMA's protos use the wrapper types (DoubleValue, ...)
    pool.Add(wrappers)
    for module in _TFMA_PROTO_MODULES:
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(_serialized_file(folder / f"{module}.py")))
    return pool


def _serialized_file(path: Path) -> bytes:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile" and node.args:
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, bytes):
                return argument.value
    raise ImportError(f"{path} does not hold a serialized descriptor as protoc generates it")
