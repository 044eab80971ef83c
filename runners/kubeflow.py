"""Kubeflow Pipelines v2 and Vertex AI Pipelines: compile ``create_pipeline(config)`` to a pipeline-spec JSON, and
submit that spec to a Kubeflow Pipelines host.

Compiling is offline: KubeflowV2DagRunner writes the IR (the KFP pipeline-spec proto as JSON) without touching
``gs://`` paths or any cloud API, because user code is referenced by dotted path and lives in the image. The same
file runs on Vertex AI Pipelines (``runners.vertex``) and on any KFP v2 backend (``submit_to_kubeflow``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tfx_compat
from pipeline.config import PipelineConfig
from pipeline.errors import UserError


def compile_spec(config: PipelineConfig, output: str | Path, target: str = "vertex") -> Path:
    """Compiles the pipeline for ``config`` into ``output``; returns its path.

    ``target`` "vertex" writes what TFX writes for Vertex AI: a ``PipelineJob`` JSON (``pipelineSpec`` plus
    ``runtimeConfig``). "kubeflow" writes the bare ``PipelineSpec``, the format Kubeflow Pipelines uploads take
    (JSON is valid YAML). The image of every step is ``container.image``; with ``pipeline.runtime_parameters``
    on, the data root, the train/eval args and the evaluation config are runtime parameters whose defaults are
    this config's values (in ``runtimeConfig`` and as ``defaultValue`` of the root inputs).

    Args:
        config: a profile without an ML Metadata connection of its own (Vertex and Kubeflow bring theirs).
        output: the JSON file to write; its folder is created.
        target: "vertex" or "kubeflow", as above.

    Returns:
        The path written.
    """
    if target not in ("vertex", "kubeflow"):
        raise ValueError(f"unknown compile target {target!r}")
    if config.metadata.sqlite_path or config.metadata.mysql_host:
        raise UserError(
            f"profile '{config.profile}' sets an ML Metadata connection; Vertex AI and Kubeflow bring their own, "
            'so set metadata.sqlite_path = "" (and no metadata.mysql_host) in it'
        )
    tfx_compat.prepare_tensorflow()
    from tfx.orchestration.data_types import RuntimeParameter
    from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import (
        KubeflowV2DagRunner,
        KubeflowV2DagRunnerConfig,
    )

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(config)
    defaults = {
        value.name: value.default
        for component in pipeline.components
        for value in component.exec_properties.values()
        if isinstance(value, RuntimeParameter)
    }
    runner = KubeflowV2DagRunner(
        config=KubeflowV2DagRunnerConfig(
            default_image=config.container.image, display_name=config.pipeline.name, use_pipeline_spec_2_1=True
        )
    )
    document = runner.run(pipeline, parameter_values=defaults, write_out=False)
    inputs = document["pipelineSpec"]["root"].get("inputDefinitions", {}).get("parameters", {})
    for name, default in defaults.items():
        inputs[name].update({"defaultValue": default, "isOptional": True})
    if target == "kubeflow":
        document = document["pipelineSpec"]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return output


def read_spec(path: str | Path) -> dict[str, Any]:
    """The compiled spec as a dict; a user error when the file is missing or not a pipeline spec."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"compiled pipeline {path} not found; create it with `taxi-pipeline compile`") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not a compiled pipeline (not JSON: {error.msg})") from None
    if not isinstance(document, dict) or "pipelineSpec" not in document and "root" not in document:
        raise UserError(f"{path} is not a compiled pipeline spec (no pipelineSpec)")
    return document


def pipeline_spec(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``PipelineSpec`` part of a compiled file (TFX wraps it in a ``PipelineJob`` with ``pipelineSpec``)."""
    return document.get("pipelineSpec", document)


def runtime_parameters(document: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's runtime parameters and their compiled-in defaults."""
    spec = pipeline_spec(document)
    definitions = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    defaults = document.get("runtimeConfig", {}).get("parameterValues", {})
    result = {}
    for name, definition in definitions.items():
        result[name] = defaults.get(name, definition.get("defaultValue"))
    return result


def parse_parameters(document: Mapping[str, Any], items: list[str]) -> dict[str, Any]:
    """``name=value`` command-line parameters, checked against the spec and converted to the declared type.

    Besides the spec's own parameters, ``train_steps``, ``eval_steps``, ``min_auc`` and ``max_auc_regression``
    are accepted and written into the JSON of ``train_args``, ``eval_args`` and ``eval_config``.

    Args:
        document: the compiled spec (``read_spec``), whose root inputs declare the parameters.
        items: ``name=value`` texts as the user typed them.

    Returns:
        The parameter values to submit, by name; a UserError names the first unknown or malformed item.
    """
    known = runtime_parameters(document)
    values: dict[str, Any] = {}
    for item in items:
        name, separator, value = item.partition("=")
        name = name.strip()
        if not separator or not name:
            raise UserError(f"--param {item!r}: expected name=value, e.g. --param train_steps=500")
        if name in _SHORTHANDS:
            target, setter = _SHORTHANDS[name]
            if target not in known:
                raise UserError(f"--param {name}: the compiled pipeline has no runtime parameter {target}")
            current = json.loads(values.get(target, known[target]) or "{}")
            setter(current, _number(name, value))
            values[target] = json.dumps(current, sort_keys=True)
        elif name in known:
            values[name] = value
        else:
            options = ", ".join(sorted([*known, *(s for s, (t, _) in _SHORTHANDS.items() if t in known)]))
            raise UserError(f"--param {name}: not a runtime parameter of this pipeline; known: {options}")
    return values


# MetricConfig classes whose thresholds judge the AUC: TFMA's own, and pipeline/binary_metrics.py's (named by
# string here, so that reading a compiled spec does not import TFMA).
_AUC_GATES = {"AUC", "BinaryClassifierMetrics"}


def _auc_threshold(document: dict) -> dict:
    """The AUC threshold in an eval config's JSON (``pipeline.evaluation.eval_config`` writes exactly one)."""
    for metrics_spec in document.get("metrics_specs", []):
        for metric in metrics_spec.get("metrics", []):
            if metric.get("class_name") in _AUC_GATES and metric.get("per_slice_thresholds"):
                return metric["per_slice_thresholds"][0]["threshold"]
    raise UserError("the compiled eval_config has no AUC threshold to change")


def _set_min_auc(document: dict, value: float) -> None:
    _auc_threshold(document).setdefault("value_threshold", {})["lower_bound"] = value


def _set_max_regression(document: dict, value: float) -> None:
    _auc_threshold(document).setdefault("change_threshold", {})["absolute"] = -value


def _set_steps(document: dict, value: float) -> None:
    document["num_steps"] = int(value)


# Friendly names for values inside the JSON runtime parameters (TFX takes protos whole, as JSON text).
_SHORTHANDS: dict[str, tuple[str, Callable[[dict, Any], None]]] = {
    "train_steps": ("train_args", _set_steps),
    "eval_steps": ("eval_args", _set_steps),
    "min_auc": ("eval_config", _set_min_auc),
    "max_auc_regression": ("eval_config", _set_max_regression),
}


def _number(name: str, value: str) -> int | float:
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise UserError(f"--param {name}={value!r}: expected a number") from None


def check_host(host: str) -> None:
    """A UserError when no Kubeflow Pipelines host is given."""
    if not host:
        raise UserError("no Kubeflow Pipelines host: pass --host URL or set kubeflow.host in the profile")


def submit_to_kubeflow(
    spec_path: str | Path,
    host: str,
    parameters: Mapping[str, Any],
    *,
    experiment: str,
    run_name: str | None = None,
    enable_caching: bool | None = None,
    schedule: str | None = None,
) -> str:
    """Creates a run (or, with a 5-field cron ``schedule``, a recurring run) of the compiled spec on a Kubeflow
    Pipelines host.

    Args:
        spec_path: a spec ``compile_spec`` wrote, in either format.
        host: the KFP API endpoint.
        parameters: runtime parameter values (``parse_parameters``).
        experiment: the KFP experiment to file the run under (created if missing).
        run_name: the run's (or recurring run's) name; KFP's default when None.
        enable_caching: False forces every step to run; None keeps the spec's setting.
        schedule: a 5-field cron expression for a recurring run instead of one run.

    Returns:
        The id of the run or recurring run. Any failure to reach or use the host is a one-line UserError.
    """
    check_host(host)
    spec = dict(pipeline_spec(read_spec(spec_path)))
    import tempfile

    import kfp

    with tempfile.TemporaryDirectory() as folder:
        # kfp.Client reads packages by extension; JSON is valid YAML.
        package = Path(folder) / "pipeline.yaml"
        package.write_text(json.dumps(spec))
        try:
            client = kfp.Client(host=host)
            if schedule:
                fields = schedule.split()
                if len(fields) != 5:
                    raise UserError(f'--schedule {schedule!r}: expected a 5-field cron expression, e.g. "0 3 * * *"')
                experiment_id = client.create_experiment(name=experiment).experiment_id
                recurring = client.create_recurring_run(
                    experiment_id=experiment_id,
                    job_name=run_name or f"{spec['pipelineInfo']['name']}-schedule",
                    cron_expression="0 " + schedule,  # KFP's cron has a leading seconds field
                    pipeline_package_path=str(package),
                    params=dict(parameters),
                    enable_caching=enable_caching,
                )
                return recurring.recurring_run_id
            result = client.create_run_from_pipeline_package(
                str(package),
                arguments=dict(parameters),
                run_name=run_name,
                experiment_name=experiment,
                enable_caching=enable_caching,
            )
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure to reach the host becomes one line for the user
            raise UserError(_kfp_error(host, error)) from None
    return result.run_id


def _kfp_error(host: str, error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    status = getattr(error, "status", None)
    if status in (401, 403):
        return f"Kubeflow Pipelines at {host} refused the request ({status}): sign in or pass a token, then retry"
    if status is not None:
        return f"Kubeflow Pipelines at {host} answered {status}: {getattr(error, 'reason', text)}"
    return f"cannot reach Kubeflow Pipelines at {host} ({type(error).__name__}: {text[:200]}); check --host"
