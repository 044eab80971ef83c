"""Reading what the Evaluator (TFMA) wrote: overall and per-slice metrics, and why a model was not blessed.

Shared by the model selector (which ranks candidates on these numbers) and the run summary (which shows them),
so both report the same values. TFMA is imported only when results are read.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class EvaluationMetrics:
    candidate: dict[str, float] = dataclasses.field(default_factory=dict)
    baseline: dict[str, float] = dataclasses.field(default_factory=dict)  # empty on a first run (no baseline)
    slices: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # candidate's, by slice name


def _has_output(evaluation_uri: str, prefix: str) -> bool:
    from tfx.dsl.io import fileio  # works for gs:// and local paths alike; loads TensorFlow

    return fileio.exists(evaluation_uri) and any(name.startswith(prefix) for name in fileio.listdir(evaluation_uri))


def read_metrics(evaluation_uri: str) -> EvaluationMetrics:
    """The overall metrics of candidate and baseline, and the candidate's per-slice ones; empty if none written."""
    result = EvaluationMetrics()
    if not _has_output(evaluation_uri, "metrics"):
        return result  # the Evaluator failed before writing metrics
    import tensorflow_model_analysis as tfma

    for slice_metrics in tfma.load_metrics(evaluation_uri):
        slice_name = slice_title(slice_metrics.slice_key)
        for entry in slice_metrics.metric_keys_and_values:
            key, value = entry.key, entry.value
            if key.is_diff or not value.HasField("double_value"):
                continue
            number = value.double_value.value
            # TFX's Evaluator names the two models TFMA's way: tfma.CANDIDATE_KEY and tfma.BASELINE_KEY.
            is_baseline = key.model_name == tfma.BASELINE_KEY
            if slice_name == "overall":
                (result.baseline if is_baseline else result.candidate)[key.name] = number
            elif not is_baseline:
                result.slices.setdefault(slice_name, {})[key.name] = number
    return result


def validation_failures(evaluation_uri: str) -> list[str]:
    """Why TFMA did not bless the model, one line per failed threshold (empty when it passed)."""
    if not _has_output(evaluation_uri, "validations"):
        return []
    import tensorflow_model_analysis as tfma

    validation = tfma.load_validation_result(evaluation_uri)
    lines = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            lines.append(_failure_text(failure))
    if validation.missing_thresholds or validation.missing_slices:
        lines.append("some thresholds could not be checked (metrics or slices missing)")
    return lines


def _failure_text(failure: Any) -> str:
    """``auc 0.5812 is below 0.7`` or ``auc changed by -0.0240 vs. the baseline, below -0.01``."""
    name = failure.metric_key.name
    value = failure.metric_value.double_value.value if failure.metric_value.HasField("double_value") else None
    threshold = failure.metric_threshold
    if failure.metric_key.is_diff and threshold.HasField("change_threshold"):
        bound = threshold.change_threshold.absolute.value
        shown = f" by {value:+.4f}" if value is not None else ""
        return f"{name} changed{shown} vs. the baseline; the limit is {bound:+g}"
    bounds = threshold.value_threshold
    shown = f" {value:.4f}" if value is not None else ""
    if bounds.HasField("lower_bound"):
        return f"{name}{shown} is below the minimum {bounds.lower_bound.value:g}"
    if bounds.HasField("upper_bound"):
        return f"{name}{shown} is above the maximum {bounds.upper_bound.value:g}"
    return f"{name}{shown} fails its threshold"


def slice_title(slice_key: Any) -> str:
    """``overall`` or ``feature=value, ...`` for a TFMA slice key."""
    if not slice_key.single_slice_keys:
        return "overall"
    parts = []
    for single in slice_key.single_slice_keys:
        if single.HasField("bytes_value"):
            value: Any = single.bytes_value.decode()
        else:
            value = single.int64_value if single.HasField("int64_value") else single.float_value
        parts.append(f"{single.column}={value}")
    return ", ".join(parts)
