"""StatisticsGen's statistics as a person reads them: per split and per feature, how many examples have a value,
how many lack one, the range and mean of a number or the most frequent values of a category, and a small histogram.

Each split's ``Split-<name>/FeatureStats.pb`` is a serialized ``DatasetFeatureStatisticsList``; TFDV's
``load_stats_binary`` reads the same file but imports TensorFlow, so it is parsed here with protobuf alone.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from tensorflow_metadata.proto.v0 import statistics_pb2

STATISTICS_FILE = "FeatureStats.pb"


@dataclasses.dataclass(frozen=True)
class Bucket:
    """One bar of a histogram: the values from ``low`` to ``high`` (a category's value in ``label``) and how many.

    TFDV's equal-width histogram for numbers; for strings one bar per top value.
    """

    low: float
    high: float
    count: float
    label: str = ""


@dataclasses.dataclass(frozen=True)
class TopValue:
    value: str
    frequency: float


@dataclasses.dataclass(frozen=True)
class FeatureStatistics:
    name: str
    type: str  # INT, FLOAT, STRING, BYTES or STRUCT (TFDV's FeatureNameStatistics.Type)
    count: int  # examples with at least one value
    missing: int  # examples without a value: the feature is absent, or present with no value (an empty CSV cell)
    missing_pct: float  # ``missing`` as a percentage of the split's examples
    numeric: bool
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    median: float | None = None
    std_dev: float | None = None
    zeros: int | None = None
    unique: int | None = None  # distinct values of a string or categorical feature
    top_values: list[TopValue] = dataclasses.field(default_factory=list)
    # Numeric: TFDV's standard histogram (equal-width buckets); string: the most frequent values, one bar each.
    histogram: list[Bucket] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class SplitStatistics:
    name: str
    examples: int
    features: list[FeatureStatistics]

    def feature(self, name: str) -> FeatureStatistics:
        return next(feature for feature in self.features if feature.name == name)


@dataclasses.dataclass(frozen=True)
class StatisticsView:
    splits: list[SplitStatistics]

    def split(self, name: str) -> SplitStatistics:
        return next(split for split in self.splits if split.name == name)


@functools.lru_cache(maxsize=32)
def read_statistics(artifact_id: int, uri: str, splits: tuple[str, ...]) -> StatisticsView:
    """Each split's statistics in the ExampleStatistics folder ``uri`` (a local path), by the split names the
    artifact's ``split_names`` lists; ``artifact_id`` and ``uri`` are the cache key."""
    return StatisticsView([_split(name, load(uri, name)) for name in splits])


def load(uri: str, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    """One split's statistics proto, as TFDV's ``load_stats_binary`` would return it."""
    path = Path(uri) / f"Split-{split}" / STATISTICS_FILE
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(path.read_bytes())


def _split(name: str, statistics: statistics_pb2.DatasetFeatureStatisticsList) -> SplitStatistics:
    if not statistics.datasets:
        return SplitStatistics(name, 0, [])
    dataset = statistics.datasets[0]  # StatisticsGen writes one dataset per split file
    features = [_feature(feature, dataset.num_examples) for feature in dataset.features]
    return SplitStatistics(name, dataset.num_examples, sorted(features, key=lambda feature: feature.name))


def _feature(feature: statistics_pb2.FeatureNameStatistics, examples: int) -> FeatureStatistics:
    kind = feature.WhichOneof("stats")
    stats = getattr(feature, kind) if kind else None
    count, missing = _presence(stats.common_stats if stats is not None else None, examples)
    shown = FeatureStatistics(
        name=".".join(feature.path.step) or feature.name,
        type=statistics_pb2.FeatureNameStatistics.Type.Name(feature.type),
        count=count,
        missing=missing,
        missing_pct=100.0 * missing / examples if examples else 0.0,
        numeric=kind == "num_stats",
    )
    if kind == "num_stats":
        standard = [h for h in stats.histograms if h.type == statistics_pb2.Histogram.STANDARD]
        summary = {"min": stats.min, "max": stats.max, "mean": stats.mean, "median": stats.median}
        return dataclasses.replace(
            shown,
            **(summary if count else {}),  # without a value, TFDV's zeros are no minimum
            std_dev=stats.std_dev if count else None,
            zeros=stats.num_zeros,
            histogram=[
                Bucket(b.low_value, b.high_value, b.sample_count) for b in (standard[0].buckets if standard else [])
            ],
        )
    if kind == "string_stats":
        return dataclasses.replace(
            shown,
            unique=stats.unique,
            top_values=[TopValue(value.value, value.frequency) for value in stats.top_values],
            histogram=[Bucket(b.low_rank, b.high_rank, b.sample_count, b.label) for b in stats.rank_histogram.buckets],
        )
    return shown  # bytes or struct features: presence only


def _presence(common: statistics_pb2.CommonStatistics | None, examples: int) -> tuple[int, int]:
    """Examples with a value and examples without one.

    TFDV counts an example as "non-missing" when the feature is present, even with no value, and ExampleGen writes
    an empty CSV cell as exactly that. When no example has more than one value, each value is one example with a
    value; otherwise the examples with an empty list cannot be told apart and count as having one.
    """
    if common is None:
        return 0, examples
    count = int(common.tot_num_values if common.max_num_values <= 1 else common.num_non_missing)
    return count, max(examples - count, 0)
