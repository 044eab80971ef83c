"""A Trainer's ModelRun artifact as the run explorer shows it: the training curves (loss and AUC, train against
validation) and the hyperparameters the model trained with.

``models.trainer.train`` writes the curves into the ModelRun folder as TensorBoard logs, one subfolder per
TensorBoard run (``train/``, ``validation/``) of TF2 summaries, each scalar a tensor. TensorBoard's
``EventAccumulator`` reads them, but its reload imports TensorFlow (5-12 s here) for the record reader: so the event
files are read with ``runs.tfformats`` and parsed with TensorBoard's ``Event`` message, whose module imports
protobuf only. ``tests/e2e/test_model_evidence.py`` checks the result against ``EventAccumulator``'s.

Local paths only (the pipeline root), like the other readers; a result is cached per artifact: artifacts never
change once ML Metadata lists them. Importing this module loads no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import struct
from pathlib import Path
from typing import Any

from runs import tfformats

# models.trainer.HYPERPARAMETERS_FILE, not imported from there: that module loads TensorFlow.
HYPERPARAMETERS_FILE = "hyperparameters.json"
EVENT_FILE_MARK = "tfevents"  # TensorFlow names event files events.out.tfevents.<time>.<host>...
SCALARS_PLUGIN = "scalars"

# TensorFlow's DataType numbers of the scalar types a summary may hold, as struct formats.
_SCALAR_FORMATS = {1: "<f", 2: "<d", 3: "<i", 9: "<q"}  # float32, float64, int32, int64

Point = tuple[int, float]  # (step, value)


@dataclasses.dataclass(frozen=True)
class TrainingView:
    """The curves by tag, then by TensorBoard run: ``curves["auc"]["validation"]`` is ``[(step, value), ...]``
    by step. This Trainer writes the tags ``loss`` and ``auc`` for the runs ``train`` and ``validation``."""

    curves: dict[str, dict[str, list[Point]]]
    candidate: str = ""  # the candidate model this Trainer trained
    hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)  # as the model was built with them
    eval_metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # on the eval split, after training

    def final(self, tag: str, run: str) -> float | None:
        """The curve's last value, or None if there is no such curve."""
        points = self.curves.get(tag, {}).get(run)
        return points[-1][1] if points else None


@functools.lru_cache(maxsize=64)
def read_training(artifact_id: int, uri: str) -> TrainingView:
    """The training curves and hyperparameters in the ModelRun folder ``uri`` (a local path); ``artifact_id`` and
    ``uri`` are the cache key. A Trainer that wrote no logs (an older run) has no curves; FileNotFoundError if the
    folder does not exist."""
    folder = Path(uri)
    if not folder.is_dir():
        raise FileNotFoundError(2, "no such folder", uri)
    curves: dict[str, dict[str, list[Point]]] = {}
    for run_folder in sorted(path for path in folder.iterdir() if path.is_dir()):
        for tag, points in _scalars(run_folder).items():
            curves.setdefault(tag, {})[run_folder.name] = points
    record_file = folder / HYPERPARAMETERS_FILE
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    return TrainingView(
        curves=curves,
        candidate=record.get("candidate", ""),
        hyperparameters=record.get("hyperparameters", {}),
        eval_metrics=record.get("eval_metrics", {}),
    )


def _scalars(run_folder: Path) -> dict[str, list[Point]]:
    """Each scalar tag of one TensorBoard run: its points by step. A step written twice (a Trainer that was retried
    into the same folder) keeps the later value, as TensorBoard shows it."""
    from tensorboard.compat.proto import event_pb2  # protobuf only; deferred so importing this module stays light

    values: dict[str, dict[int, float]] = {}
    plugins: dict[str, str] = {}  # a tag's plugin, which writers may state on its first value only
    for path in sorted(p for p in run_folder.iterdir() if EVENT_FILE_MARK in p.name):
        for record in tfformats.records(path):
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                plugin = plugins.setdefault(value.tag, value.metadata.plugin_data.plugin_name)
                number = _scalar(value, plugin)
                if number is not None:
                    values.setdefault(value.tag, {})[event.step] = number
    return {tag: sorted(points.items()) for tag, points in values.items()}


def _scalar(value: Any, plugin: str) -> float | None:
    """A summary value's number: a TF2 scalar summary (a 0-d tensor of the scalars plugin) or a TF1 simple value;
    None for anything else (histograms, images, text)."""
    if value.HasField("simple_value"):
        return value.simple_value
    tensor = value.tensor
    if plugin not in ("", SCALARS_PLUGIN) or tensor.tensor_shape.dim:
        return None
    fmt = _SCALAR_FORMATS.get(tensor.dtype)
    if fmt is None:
        return None
    if tensor.tensor_content:
        return float(struct.unpack(fmt, tensor.tensor_content[: struct.calcsize(fmt)])[0])
    for field in ("float_val", "double_val", "int_val", "int64_val"):
        repeated = getattr(tensor, field)
        if repeated:
            return float(repeated[0])
    return None
