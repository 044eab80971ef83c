"""The model selector: a custom TFX component that picks the best blessed candidate and hands it to the Pusher.

Each candidate has its own Trainer and Evaluator. The selector reads every candidate's blessing and TFMA metrics,
picks the blessed one with the highest ``selection_metric`` (ties go to the earlier candidate in the config), and
outputs:

- ``model``: a copy of the winner's model, which the standard Pusher pushes (a component cannot re-output an
  input artifact, and the Pusher takes one model channel);
- ``blessing``: a ModelBlessing shaped like the Evaluator's (``blessed``, ``current_model_id`` = the winner's
  Trainer model), so the Pusher pushes only when some candidate was blessed, and the baseline resolver of the
  next run finds the model that was pushed, not merely the last blessed candidate. It also records in MLMD every
  candidate's score, the winner and the reason (``selection_*`` custom properties, and ``selection.json``).

It is a class-based component with an ordinary executor, so it runs unchanged under LocalDagRunner, Kubeflow /
Vertex (the executor runs in the pipeline image) and Airflow. Its inputs are three channels per candidate
(``<name>_model``, ``<name>_evaluation``, ``<name>_blessing``), declared per pipeline from the configured names.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from pipeline.components import evaluation_results
from pipeline.names import (
    BLESSED,
    CURRENT_MODEL,
    CURRENT_MODEL_ID,
    SELECTION_METRIC,
    SELECTION_REASON,
    SELECTION_SCORES,
    SELECTION_WINNER,
)
from tfx_compat import spec_class_with_inputs

SELECTION_FILE = "selection.json"


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    """One candidate as the selector saw it."""

    name: str
    blessed: bool
    score: float | None  # the selection metric on the eval split; None if the Evaluator wrote no metrics
    baseline_score: float | None = None  # the same metric for the previous blessed model, if there was one
    failures: tuple[str, ...] = ()  # why TFMA did not bless it


@dataclasses.dataclass(frozen=True)
class Selection:
    winner: str | None
    reason: str


def choose(scores: Sequence[CandidateScore], metric: str) -> Selection:
    """The blessed candidate with the highest ``metric`` (the first listed wins a tie), and why in one sentence."""
    blessed = [candidate for candidate in scores if candidate.blessed and candidate.score is not None]
    rejected = "; ".join(
        f"{candidate.name} not blessed ({', '.join(candidate.failures) or 'below the thresholds'})"
        for candidate in scores
        if not candidate.blessed
    )
    if not blessed:
        return Selection(None, f"no candidate was blessed, so nothing is pushed: {rejected}")
    winner = max(blessed, key=lambda candidate: candidate.score)  # max keeps the first of equal scores
    others = ", ".join(f"{c.name} {c.score:.4f}" for c in blessed if c is not winner)
    reason = f"{winner.name} has the highest {metric} ({winner.score:.4f}) of the blessed candidates"
    reason += f" (others: {others})" if others else " (no other blessed candidate has a score)"
    if winner.baseline_score is not None:
        reason += f"; the previous blessed model scored {winner.baseline_score:.4f}"
    return Selection(winner.name, reason + (f"; {rejected}" if rejected else ""))


def _copy_tree(source: str, destination: str) -> None:
    """Copies a directory tree with TFX's filesystem layer (local paths and gs:// alike)."""
    for directory, _, files in fileio.walk(source):
        target = os.path.join(destination, os.path.relpath(directory, source))
        fileio.makedirs(target)
        for name in files:
            fileio.copy(os.path.join(directory, name), os.path.join(target, name), overwrite=True)


def _score(name: str, input_dict: Mapping[str, list[types.Artifact]], metric: str) -> CandidateScore:
    blessing = artifact_utils.get_single_instance(input_dict[f"{name}_blessing"])
    evaluation = artifact_utils.get_single_uri(input_dict[f"{name}_evaluation"])
    metrics = evaluation_results.read_metrics(evaluation)
    blessed = blessing.get_int_custom_property(BLESSED) == 1
    return CandidateScore(
        name=name,
        blessed=blessed,
        score=metrics.candidate.get(metric),
        baseline_score=metrics.baseline.get(metric),
        failures=() if blessed else tuple(evaluation_results.validation_failures(evaluation)),
    )


class ModelSelectorExecutor(base_executor.BaseExecutor):
    """Scores the candidates, records the decision, and copies the winner (if any) to the ``model`` output."""

    def Do(  # noqa: N802 - TFX's executor interface
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        names = json.loads(exec_properties["candidates"])
        metric = exec_properties["selection_metric"]
        scores = [_score(name, input_dict, metric) for name in names]
        selection = choose(scores, metric)

        model = artifact_utils.get_single_instance(output_dict["model"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        blessing.set_int_custom_property(BLESSED, int(selection.winner is not None))
        blessing.set_string_custom_property(SELECTION_METRIC, metric)
        blessing.set_string_custom_property(SELECTION_REASON, selection.reason)
        blessing.set_string_custom_property(
            SELECTION_SCORES, json.dumps([dataclasses.asdict(score) for score in scores])
        )
        if selection.winner is not None:
            winner = artifact_utils.get_single_instance(input_dict[f"{selection.winner}_model"])
            _copy_tree(winner.uri, model.uri)
            model.set_string_custom_property("candidate", selection.winner)
            blessing.set_string_custom_property(SELECTION_WINNER, selection.winner)
            blessing.set_string_custom_property(CURRENT_MODEL, winner.uri)
            blessing.set_int_custom_property(CURRENT_MODEL_ID, winner.id)
        record = {"winner": selection.winner, "reason": selection.reason, "metric": metric, "candidates": scores}
        with fileio.open(os.path.join(blessing.uri, SELECTION_FILE), "w") as handle:
            handle.write(json.dumps(record, default=dataclasses.asdict, indent=2))


class ModelSelectorSpec(types.ComponentSpec):
    """Parameters and outputs are fixed; the inputs are declared per pipeline by ``ModelSelector``."""

    PARAMETERS = {
        "candidates": ExecutionParameter(type=str),  # JSON list of candidate names, in config order
        "selection_metric": ExecutionParameter(type=str),
    }
    INPUTS: dict[str, ChannelParameter] = {}
    OUTPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


@dataclasses.dataclass(frozen=True)
class CandidateChannels:
    """What one candidate contributes: its Trainer's model and its Evaluator's evaluation and blessing."""

    model: types.BaseChannel
    evaluation: types.BaseChannel
    blessing: types.BaseChannel


class ModelSelector(base_component.BaseComponent):
    """Picks the best blessed candidate by ``selection_metric``; see the module docstring."""

    SPEC_CLASS = ModelSelectorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ModelSelectorExecutor)

    def __init__(self, candidates: Mapping[str, CandidateChannels], selection_metric: str):
        inputs = {}
        channels = {}
        for name, candidate in candidates.items():
            for field in dataclasses.fields(candidate):
                channel = getattr(candidate, field.name)
                inputs[f"{name}_{field.name}"] = ChannelParameter(type=channel.type)
                channels[f"{name}_{field.name}"] = channel
        # A spec class per pipeline, because the number of candidates is the config's.
        spec_class = spec_class_with_inputs(ModelSelectorSpec, inputs)
        spec = spec_class(
            candidates=json.dumps(list(candidates)),
            selection_metric=selection_metric,
            model=types.Channel(type=standard_artifacts.Model),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            **channels,
        )
        super().__init__(spec=spec)
