"""The validation gate: a custom component that stops the run when ExampleValidator found anomalies.

TFX records anomalies but never stops on them. This gate reads them and fails when there are any, and Transform
takes its schema from the gate's output, so Transform, Trainer, Evaluator and Pusher cannot run on data that failed
validation. Being an ordinary TFX component with a data dependency, it behaves the same under LocalDagRunner,
Kubeflow/Vertex and Airflow: no runner-specific branch.

No ``from __future__ import annotations`` here: TFX reads the real annotation objects to build the component.
"""

import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, Schema

from pipeline.components import anomalies as anomaly_text


class DataValidationError(RuntimeError):
    """The input data does not match the curated schema; the message lists each problem in plain words."""


@component
def ValidationGate(  # noqa: N802 - TFX names component classes after the function
    anomalies: InputArtifact[ExampleAnomalies],
    schema: InputArtifact[Schema],
    validated_schema: OutputArtifact[Schema],
) -> None:
    """Fails on any anomaly; otherwise passes the curated schema on as ``validated_schema``."""
    splits = artifact_utils.decode_split_names(anomalies.split_names)
    problems = anomaly_text.summarize(anomaly_text.read_split_anomalies(anomalies.uri, splits))
    if problems:
        raise DataValidationError(
            "the data does not match the curated schema, so the run stops before Transform and nothing is "
            "trained or pushed:\n  " + "\n  ".join(problems)
        )
    for name in fileio.listdir(schema.uri):
        fileio.copy(os.path.join(schema.uri, name), os.path.join(validated_schema.uri, name), overwrite=True)
