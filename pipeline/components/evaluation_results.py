"""Reading what the Evaluator (TFMA) wrote: overall and per-slice metrics, and why a model was not blessed.

Shared by the model selector (which ranks candidates on these numbers), the run summary (which shows them) and the
run explorer (``runs.evaluations``), so all three report the same values in the same words. Reading a uri here
imports TFMA (the selector and the summary run where it is loaded anyway); the interpretation of the records
(``metrics_of``, ``validation_of``) takes the messages alone, whichever classes parsed them, so the run explorer can
parse the same files without importing TFMA.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

# How TFX's Evaluator names the two models of an evaluation with a baseline (``tfma.CANDIDATE_KEY`` and
# ``tfma.BASELINE_KEY``); without a baseline the one model's name is empty.
CANDIDATE_MODEL, BASELINE_MODEL = "candidate", "baseline"
OVERALL = "overall"  # the slice of all examples, as ``slice_title`` names it


@dataclasses.dataclass
class EvaluationMetrics:
    candidate: dict[str, float] = dataclasses.field(default_factory=dict)
    baseline: dict[str, float] = dataclasses.field(default_factory=dict)  # empty on a first run (no baseline)
    slices: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # candidate's, by slice name


@dataclasses.dataclass(frozen=True)
class ThresholdFailure:
    """One threshold a model failed, as plain values: which, by how much, and the line that says it."""

    metric: str  # "auc"
    kind: str  # "minimum" or "maximum" (a value threshold), "change" (against the baseline), or "" if unknown
    value: float | None  # the metric's value; for a change threshold, its change against the baseline
    bound: float | None  # the minimum, the maximum, or the allowed change
    margin: float | None  # value - bound: how far past the bound (negative below a minimum or a change limit)
    text: str  # "auc 0.5812 is below the minimum 0.7"
    slice: str = OVERALL


@dataclasses.dataclass(frozen=True)
class ValidationOutcome:
    """TFMA's verdict on the thresholds: whether the model passed, and each threshold it failed."""

    passed: bool | None  # None when the Evaluator wrote no validation result (it failed before)
    failures: list[ThresholdFailure] = dataclasses.field(default_factory=list)
    incomplete: bool = False  # some thresholds could not be checked: their metrics or slices were missing

    @property
    def lines(self) -> list[str]:
        """Why the model was not blessed, one line per failed threshold (empty when it passed)."""
        lines = [failure.text for failure in self.failures]
        if self.incomplete:
            lines.append("some thresholds could not be checked (metrics or slices missing)")
        return lines


def _has_output(evaluation_uri: str, prefix: str) -> bool:
    """Whether the Evaluator wrote a file starting with ``prefix`` (``metrics``, ``plots``, ``validations``)."""
    from tfx.dsl.io import fileio  # works for gs:// and local paths alike; loads TensorFlow

    return fileio.exists(evaluation_uri) and any(name.startswith(prefix) for name in fileio.listdir(evaluation_uri))


def read_metrics(evaluation_uri: str) -> EvaluationMetrics:
    """The overall metrics of candidate and baseline, and the candidate's per-slice ones; empty if none written."""
    if not _has_output(evaluation_uri, "metrics"):
        return EvaluationMetrics()  # the Evaluator failed before writing metrics
    import tensorflow_model_analysis as tfma

    return metrics_of(tfma.load_metrics(evaluation_uri))


def metrics_of(records: Iterable[Any]) -> EvaluationMetrics:
    """``read_metrics`` of TFMA's ``MetricsForSlice`` records, however they were read."""
    result = EvaluationMetrics()
    for slice_metrics in records:
        slice_name = slice_title(slice_metrics.slice_key)
        for entry in slice_metrics.metric_keys_and_values:
            key, value = entry.key, entry.value
            if key.is_diff or not value.HasField("double_value"):
                continue
            number = value.double_value.value
            is_baseline = key.model_name == BASELINE_MODEL
            if slice_name == OVERALL:
                (result.baseline if is_baseline else result.candidate)[key.name] = number
            elif not is_baseline:
                result.slices.setdefault(slice_name, {})[key.name] = number
    return result


def validation_failures(evaluation_uri: str) -> list[str]:
    """Why TFMA did not bless the model, one line per failed threshold (empty when it passed)."""
    return read_validation(evaluation_uri).lines


def read_validation(evaluation_uri: str) -> ValidationOutcome:
    """TFMA's validation result: passed or not, and each failed threshold; ``passed`` is None if none was written."""
    if not _has_output(evaluation_uri, "validations"):
        return ValidationOutcome(passed=None)
    import tensorflow_model_analysis as tfma

    return validation_of(tfma.load_validation_result(evaluation_uri))


def validation_of(validation: Any) -> ValidationOutcome:
    """``read_validation`` of TFMA's ``ValidationResult`` message, however it was read."""
    failures = [
        _failure(failure, slice_title(per_slice.slice_key))
        for per_slice in validation.metric_validations_per_slice
        for failure in per_slice.failures
    ]
    incomplete = bool(validation.missing_thresholds or validation.missing_slices)
    return ValidationOutcome(passed=validation.validation_ok, failures=failures, incomplete=incomplete)


def _failure(failure: Any, slice_name: str) -> ThresholdFailure:
    """``auc 0.5812 is below the minimum 0.7`` or ``auc changed by -0.0240 vs. the baseline; the limit is -0.01``."""
    name = failure.metric_key.name
    value = failure.metric_value.double_value.value if failure.metric_value.HasField("double_value") else None
    threshold = failure.metric_threshold
    bounds = threshold.value_threshold
    if failure.metric_key.is_diff and threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        kind, bound = "change", change.absolute.value if change.HasField("absolute") else None
        shown = f" by {value:+.4f}" if value is not None else ""
        limit = f"; the limit is {bound:+g}" if bound is not None else ""
        text = f"{name} changed{shown} vs. the baseline{limit}"
    elif bounds.HasField("lower_bound") or bounds.HasField("upper_bound"):
        above = value is not None and bounds.HasField("upper_bound") and value > bounds.upper_bound.value
        kind = "maximum" if above or not bounds.HasField("lower_bound") else "minimum"
        bound = bounds.lower_bound.value if kind == "minimum" else bounds.upper_bound.value
        shown = f" {value:.4f}" if value is not None else ""
        text = f"{name}{shown} is {'below' if kind == 'minimum' else 'above'} the {kind} {bound:g}"
    else:
        kind, bound = "", None
        text = f"{name}{f' {value:.4f}' if value is not None else ''} fails its threshold"
    margin = value - bound if value is not None and bound is not None else None
    return ThresholdFailure(name, kind, value, bound, margin, text, slice_name)


def slice_title(slice_key: Any) -> str:
    """``overall`` or ``feature=value, ...`` for a TFMA slice key."""
    if not slice_key.single_slice_keys:
        return OVERALL
    parts = []
    for single in slice_key.single_slice_keys:
        if single.HasField("bytes_value"):
            value: Any = single.bytes_value.decode()
        else:
            value = single.int64_value if single.HasField("int64_value") else single.float_value
        parts.append(f"{single.column}={value}")
    return ", ".join(parts)
