"""Benchmark: one Evaluator, TFMA's stock extractors and combiners against the pipeline's, on a finished run.

Runs TFX's own Evaluator executor (TFMA on in-process Beam, as in the local run) on the artifacts a local run left
in its pipeline root: the ExampleGen examples (eval split), one Trainer's model as the candidate and another's as
the baseline (so the change thresholds and diff metrics are computed too), the validated schema. Three
configurations:

- TFMA stock: TFMA's own extractors and metric classes (what the pipeline's metrics stand for);
- one-pass: ``pipeline.binary_metrics`` (one combiner for every metric), TFMA's own extractors;
- as the pipeline runs: one-pass, and the Evaluator's ``module_path`` set to ``pipeline.evaluator_udfs`` (each
  batch split by slice key instead of unbatched, the models' signatures called by keyword).

Each runs ``--repeat`` times, alternating, in this one process (the first run of all also pays for loading
TensorFlow's kernels, so look at the later figures). Then every metric and plot of every slice of each is
compared with TFMA stock's (``--tolerance``, absolute or relative) and so is the blessing.

    python -m bench.evaluator --root /tmp/scale-keep/ours_150k/pipeline_root

Make a root with ``python -m bench.scale --sizes 150k --tfx-size '' --keep /tmp/scale-keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.binary_metrics import BinaryClassifierMetrics, stock_metrics


def _newest(folder: Path) -> Path:
    """The newest artifact folder (TFX names them by execution id) under a component's output folder."""
    folders = [path for path in folder.iterdir() if path.is_dir() and path.name.isdigit()]
    if not folders:
        raise SystemExit(f"no artifact under {folder}: is --root a finished local run's pipeline root?")
    return max(folders, key=lambda path: int(path.name))


def _artifact(kind: Any, uri: Path, **properties: Any) -> Any:
    artifact = kind()
    artifact.uri = str(uri)
    for name, value in properties.items():
        setattr(artifact, name, value)
    return artifact


def stock_config(one_pass_config: Any) -> Any:
    """The same EvalConfig with ``BinaryClassifierMetrics`` replaced by TFMA's own classes it stands for."""
    import tensorflow_model_analysis as tfma

    config = tfma.EvalConfig()
    config.CopyFrom(one_pass_config)
    for spec in config.metrics_specs:
        kept = []
        for metric in spec.metrics:
            if metric.class_name != BinaryClassifierMetrics.__name__:
                kept.append(metric)
                continue
            settings = BinaryClassifierMetrics(**json.loads(metric.config or "{}")).kwargs
            stock_specs = tfma.metrics.specs_from_metrics(
                stock_metrics(settings["auc_thresholds"], settings["calibration_buckets"]),
                include_example_count=False,
                include_weighted_example_count=False,
            )
            for stock in (config for stock_spec in stock_specs for config in stock_spec.metrics):
                if stock.class_name == "AUC":
                    stock.per_slice_thresholds.extend(metric.per_slice_thresholds)
                    if metric.HasField("threshold"):
                        stock.threshold.CopyFrom(metric.threshold)
                kept.append(stock)
        del spec.metrics[:]
        spec.metrics.extend(kept)
    return config


def run_evaluator(
    root: Path, candidate: str, baseline: str, eval_config: Any, output: Path, module_path: str | None = None
) -> float:
    """Seconds TFX's Evaluator executor took for ``eval_config`` (and the Evaluator's ``module_path``, if any);
    its outputs go under ``output``."""
    from google.protobuf import json_format
    from tfx.components.evaluator import executor
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts, standard_component_specs

    examples = _artifact(standard_artifacts.Examples, _newest(root / "CsvExampleGen" / "examples"))
    examples.split_names = json.dumps(["train", "eval"])
    inputs = {
        standard_component_specs.EXAMPLES_KEY: [examples],
        standard_component_specs.MODEL_KEY: [
            _artifact(standard_artifacts.Model, _newest(root / f"Trainer_{candidate}" / "model"))
        ],
        standard_component_specs.BASELINE_MODEL_KEY: [
            _artifact(standard_artifacts.Model, _newest(root / f"Trainer_{baseline}" / "model"))
        ],
        standard_component_specs.SCHEMA_KEY: [
            _artifact(standard_artifacts.Schema, _newest(root / "ValidationGate" / "validated_schema"))
        ],
    }
    (output / "evaluation").mkdir(parents=True)
    (output / "blessing").mkdir()
    outputs = {
        standard_component_specs.EVALUATION_KEY: [_artifact(standard_artifacts.ModelEvaluation, output / "evaluation")],
        standard_component_specs.BLESSING_KEY: [_artifact(standard_artifacts.ModelBlessing, output / "blessing")],
    }
    properties = {
        standard_component_specs.EVAL_CONFIG_KEY: json_format.MessageToJson(eval_config),
        standard_component_specs.EXAMPLE_SPLITS_KEY: "null",
        standard_component_specs.FAIRNESS_INDICATOR_THRESHOLDS_KEY: "null",
    }
    if module_path:
        properties[standard_component_specs.MODULE_PATH_KEY] = module_path
    context = base_beam_executor.BaseBeamExecutor.Context(tmp_dir=str(output / "tmp"), unique_id="bench")
    started = time.perf_counter()
    executor.Executor(context).Do(inputs, outputs, properties)
    return time.perf_counter() - started


def _flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) pairs of a JSON-like value: the metric or plot a number belongs to is in its path."""
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _flatten(value[key], f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{path}[{index}]")
    else:
        yield path, value


def results(evaluation: Path) -> dict[str, Any]:
    """Every metric and plot value per slice, and the validation result, of one Evaluator output folder."""
    import tensorflow_model_analysis as tfma
    from google.protobuf import json_format

    values: dict[str, Any] = {}
    for kind, records in (("metrics", tfma.load_metrics(str(evaluation))), ("plots", tfma.load_plots(str(evaluation)))):
        for record in records:
            as_dict = json_format.MessageToDict(record)
            slice_name = json.dumps(as_dict.pop("sliceKey", {}), sort_keys=True)
            for entries in as_dict.values():  # metricKeysAndValues / plotKeysAndValues: {key, value} each
                for entry in entries:
                    name = f"{kind} {slice_name} {json.dumps(entry.get('key', {}), sort_keys=True)}"
                    for path, leaf in _flatten(entry.get("value", {})):
                        values[f"{name}{path}"] = leaf
    validation = tfma.load_validation_result(str(evaluation))
    values["validation_ok"] = validation.validation_ok
    return values


def compare(stock: dict[str, Any], one_pass: dict[str, Any], tolerance: float) -> tuple[list[str], float, int]:
    """Differences beyond ``tolerance`` (as text), the largest absolute difference, and how many numbers matched."""
    problems = [f"only in TFMA's: {key}" for key in sorted(set(stock) - set(one_pass))]
    problems += [f"only in ours: {key}" for key in sorted(set(one_pass) - set(stock))]
    largest = 0.0
    numbers = 0
    for key in sorted(set(stock) & set(one_pass)):
        a, b = stock[key], one_pass[key]
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            numbers += 1
            largest = max(largest, abs(a - b))
            if not math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance):
                problems.append(f"{key}: TFMA {a!r}, ours {b!r}")
        elif a != b:
            problems.append(f"{key}: TFMA {a!r}, ours {b!r}")
    return problems, largest, numbers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="a finished local run's pipeline root")
    parser.add_argument("--candidate", default="dnn")
    parser.add_argument("--baseline", default="linear")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--keep", type=Path, help="write the Evaluator outputs here (default: a temporary folder)")
    args = parser.parse_args(argv)

    from pipeline import evaluator_udfs
    from pipeline.config import load_config
    from pipeline.evaluation import eval_config

    one_pass = eval_config(load_config())
    # name: (eval config, the Evaluator's module_path)
    configurations = {
        "TFMA stock": (stock_config(one_pass), None),
        "one-pass": (one_pass, None),
        "as the pipeline runs": (one_pass, evaluator_udfs.__name__),
    }
    seconds: dict[str, list[float]] = {name: [] for name in configurations}
    outputs: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="bench-evaluator-") as temporary:
        work = args.keep or Path(temporary)
        for attempt in range(args.repeat):
            for index, (name, (config, module_path)) in enumerate(configurations.items()):
                output = work / f"{attempt}-{index}"
                seconds[name].append(
                    run_evaluator(args.root, args.candidate, args.baseline, config, output, module_path)
                )
                outputs[name] = output / "evaluation"
                print(f"  {name}, run {attempt + 1}: {seconds[name][-1]:.1f} s", flush=True)
        values = {name: results(output) for name, output in outputs.items()}  # the last run's, once

    print(f"\nEvaluator on {args.root} (candidate {args.candidate}, baseline {args.baseline}), seconds per run:")
    best = {name: min(figures) for name, figures in seconds.items()}
    stock_name = next(iter(configurations))
    for name, figures in seconds.items():
        speed_up = best[stock_name] / best[name]
        print(f"  {name:20} {'  '.join(f'{s:6.1f}' for s in figures)}   best {best[name]:.1f}  ({speed_up:.2f}x)")
    failed = False
    for name in list(configurations)[1:]:
        problems, largest, numbers = compare(values[stock_name], values[name], args.tolerance)
        same_blessing = values[stock_name]["validation_ok"] == values[name]["validation_ok"]
        print(
            f"\n{name} against {stock_name}: {numbers} numbers compared, largest absolute difference "
            f"{largest:.3g}, blessing {'the same' if same_blessing else 'DIFFERENT'}"
        )
        for problem in problems[:20]:
            print(f"  DIFFERENT {problem}")
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more")
        failed = failed or bool(problems) or not same_blessing
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
