"""Plain-words descriptions of the anomalies ExampleValidator found (TFDV's ``Anomalies`` protos).

Kept free of TensorFlow and TFX imports: the validation gate uses it inside the pipeline, and the command line
uses it to explain a stopped run without paying for TensorFlow's start-up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tensorflow_metadata.proto.v0 import anomalies_pb2

ANOMALIES_FILE = "SchemaDiff.pb"


def describe(anomalies: anomalies_pb2.Anomalies) -> list[str]:
    """One line per anomalous feature: ``feature 'fare': <what is wrong>``, plus whole-dataset problems."""
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        reasons = [reason.description or reason.short_description for reason in info.reason]
        text = "; ".join(reason for reason in reasons if reason) or info.description or info.short_description
        lines.append(f"feature '{feature}': {text}")
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        reasons = [reason.description or reason.short_description for reason in info.reason]
        lines.append("whole dataset: " + ("; ".join(r for r in reasons if r) or info.description))
    return lines


def read_split_anomalies(anomalies_uri: str, splits: Iterable[str]) -> dict[str, anomalies_pb2.Anomalies]:
    """Reads ``<uri>/Split-<split>/SchemaDiff.pb`` for each split, as ExampleValidator writes them."""
    from tfx.dsl.io import fileio  # local import: works for gs:// and local paths alike, loads TensorFlow

    result = {}
    for split in splits:
        path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies()
        with fileio.open(path, "rb") as handle:
            anomalies.ParseFromString(handle.read())
        result[split] = anomalies
    return result


def summarize(split_anomalies: dict[str, anomalies_pb2.Anomalies]) -> list[str]:
    """Lines naming each split and each problem found in it; empty when the data is clean."""
    lines = []
    for split, anomalies in split_anomalies.items():
        lines.extend(f"[{split}] {line}" for line in describe(anomalies))
    return lines
