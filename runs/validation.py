"""ExampleValidator's anomalies as a person reads them, per split and per feature, and the validation gate's verdict.

Each split's ``Split-<name>/SchemaDiff.pb`` is a serialized ``anomalies_pb2.Anomalies``. The words are
``pipeline.components.anomalies``'s, the same the gate puts in its error and the run summary prints, and the
verdict is the gate's rule: any anomaly in any split stops the run before Transform.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from tensorflow_metadata.proto.v0 import anomalies_pb2

from pipeline.components import anomalies as anomaly_text


@dataclasses.dataclass(frozen=True)
class FeatureAnomaly:
    feature: str
    description: str  # in plain words, as the gate and the run summary word it
    short: str  # TFDV's short description ("Unexpected string values")
    severity: str  # TFDV's severity: ERROR, WARNING or UNKNOWN


@dataclasses.dataclass(frozen=True)
class SplitAnomalies:
    name: str
    features: list[FeatureAnomaly]
    dataset: str = ""  # a problem of the whole split rather than of one feature (e.g. too few examples)

    @property
    def clean(self) -> bool:
        return not self.features and not self.dataset


@dataclasses.dataclass(frozen=True)
class AnomaliesView:
    splits: list[SplitAnomalies]
    passes: bool  # the gate lets the run go on
    verdict: str  # the gate's verdict in one sentence
    lines: list[str]  # every problem, one line each, as the gate's error and the run summary list them

    def split(self, name: str) -> SplitAnomalies:
        return next(split for split in self.splits if split.name == name)


@functools.lru_cache(maxsize=32)
def read_anomalies(artifact_id: int, uri: str, splits: tuple[str, ...]) -> AnomaliesView:
    """The anomalies ExampleValidator found in each of ``splits`` (in the local folder ``uri``), and the gate's
    verdict on them; cached by ``artifact_id`` and ``uri``."""
    protos = {split: load(uri, split) for split in splits}
    views = [_split(name, proto) for name, proto in protos.items()]
    lines = anomaly_text.summarize(protos)
    if lines:
        count = sum(len(split.features) + bool(split.dataset) for split in views)
        verdict = (
            f"the data does not match the curated schema ({count} problem{'s' if count != 1 else ''}): "
            "the validation gate stops the run before Transform, and nothing is trained or pushed"
        )
    else:
        verdict = "the data matches the curated schema: the validation gate lets the run go on"
    return AnomaliesView(views, passes=not lines, verdict=verdict, lines=lines)


def load(uri: str, split: str) -> anomalies_pb2.Anomalies:
    """One split's anomalies proto, read with plain file I/O (the gate's reader loads TensorFlow for gs://)."""
    path = Path(uri) / f"Split-{split}" / anomaly_text.ANOMALIES_FILE
    return anomalies_pb2.Anomalies.FromString(path.read_bytes())


def _split(name: str, anomalies: anomalies_pb2.Anomalies) -> SplitAnomalies:
    features = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        alone = anomalies_pb2.Anomalies()  # one feature's anomaly, worded by the shared function
        alone.anomaly_info[feature].CopyFrom(info)
        line = anomaly_text.describe(alone)[0]
        features.append(
            FeatureAnomaly(
                feature=feature,
                description=line.removeprefix(f"feature '{feature}': ").strip(),
                short=info.short_description,
                severity=anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
            )
        )
    dataset = ""
    if anomalies.HasField("dataset_anomaly_info"):
        whole = anomalies_pb2.Anomalies()
        whole.dataset_anomaly_info.CopyFrom(anomalies.dataset_anomaly_info)
        dataset = anomaly_text.describe(whole)[0].removeprefix("whole dataset: ").strip()
    return SplitAnomalies(name, features, dataset)
