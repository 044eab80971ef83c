"""Schemas as a person reads them: each feature's type, allowed values, presence and value count; the curated schema
and the inferred one side by side with what differs; and a Transform graph's input and output features.

A Schema artifact holds ``schema.pbtxt`` (``schema_pb2.Schema`` in text form): ImportSchemaGen's copy of the
curated file, SchemaGen's inference from the statistics, the gate's pass-on. A TransformGraph holds two: the raw
features it reads (``metadata/``) and the features it writes (``transformed_metadata/``).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

SCHEMA_FILE = "schema.pbtxt"
# Where a TransformGraph keeps the schemas of what it reads and what it writes (TFT's TFTransformOutput layout).
RAW_METADATA = "metadata"
TRANSFORMED_METADATA = "transformed_metadata"
VOCABULARIES = "transform_fn/assets"

# How many values of a string domain a difference names before it says "and N more".
_NAMED_VALUES = 12


@dataclasses.dataclass(frozen=True)
class SchemaFeature:
    name: str
    type: str  # INT, FLOAT, BYTES or STRUCT
    domain: str  # the allowed values in words: "1 to 77", "at least 0", "11 values", "" when any value goes
    domain_values: list[str] = dataclasses.field(default_factory=list)  # a string domain's values
    domain_min: float | None = None
    domain_max: float | None = None
    categorical: bool = False  # an int domain marked as categories (a vocabulary id)
    required: bool = False  # every example must have it (presence.min_fraction 1)
    min_fraction: float | None = None  # the share of examples that must have it, if the schema says
    min_count: int | None = None
    value_count: str = ""  # values per example in words: "exactly 1", "0 to 1", "" when not constrained
    shape: list[int] | None = None  # a fixed shape ([] for a scalar), None when the schema gives none
    not_in_environments: list[str] = dataclasses.field(default_factory=list)  # e.g. SERVING for the label's source
    description: str = ""


@dataclasses.dataclass(frozen=True)
class SchemaView:
    features: list[SchemaFeature]
    environments: list[str] = dataclasses.field(default_factory=list)

    def feature(self, name: str) -> SchemaFeature:
        return next(feature for feature in self.features if feature.name == name)

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]


# What a difference can be about, in the order a feature's differences are listed.
ONLY_ONE_SIDE, TYPE, DOMAIN, PRESENCE, VALUE_COUNT = "feature", "type", "domain", "presence", "value count"
ASPECTS = (ONLY_ONE_SIDE, TYPE, DOMAIN, PRESENCE, VALUE_COUNT)


@dataclasses.dataclass(frozen=True)
class SchemaDifference:
    """One way a feature differs between the curated schema and the inferred one."""

    feature: str
    aspect: str  # one of ASPECTS
    curated: str  # the curated schema's side in words ("" when it lacks the feature or the constraint)
    inferred: str
    detail: str = ""  # for a string domain, which values only one side has


@dataclasses.dataclass(frozen=True)
class SchemaComparison:
    """The curated schema (ImportSchemaGen's) and the inferred one (SchemaGen's) side by side."""

    curated: SchemaView
    inferred: SchemaView
    differences: list[SchemaDifference]

    def of_feature(self, name: str) -> list[SchemaDifference]:
        return [difference for difference in self.differences if difference.feature == name]


@dataclasses.dataclass(frozen=True)
class TransformGraphView:
    outputs: list[SchemaFeature]  # the features the transform writes (what the model trains on)
    inputs: list[SchemaFeature]  # the raw features it reads
    vocabularies: dict[str, int] = dataclasses.field(default_factory=dict)  # vocabulary file -> its entries


@functools.lru_cache(maxsize=64)
def read_schema(artifact_id: int, uri: str) -> SchemaView:
    """The schema of the Schema artifact at ``uri`` (cached per artifact)."""
    return schema_view(load(Path(uri) / SCHEMA_FILE))


@functools.lru_cache(maxsize=16)
def read_transform_graph(artifact_id: int, uri: str) -> TransformGraphView:
    """The output and raw input features of the TransformGraph artifact at ``uri`` (cached per artifact)."""
    root = Path(uri)
    vocabularies = {}
    if (root / VOCABULARIES).is_dir():
        for path in sorted((root / VOCABULARIES).iterdir()):
            if path.is_file():
                with path.open("rb") as handle:
                    vocabularies[path.name] = sum(1 for _ in handle)
    return TransformGraphView(
        outputs=schema_view(load(root / TRANSFORMED_METADATA / SCHEMA_FILE)).features,
        inputs=schema_view(load(root / RAW_METADATA / SCHEMA_FILE)).features,
        vocabularies=vocabularies,
    )


def load(path: Path) -> schema_pb2.Schema:
    return text_format.Parse(path.read_text(), schema_pb2.Schema())


def schema_view(schema: schema_pb2.Schema) -> SchemaView:
    """A schema proto as plain data, its features by name."""
    string_domains = {domain.name: list(domain.value) for domain in schema.string_domain}
    features = [_feature(feature, string_domains) for feature in schema.feature]
    return SchemaView(sorted(features, key=lambda feature: feature.name), list(schema.default_environment))


def compare(curated: SchemaView, inferred: SchemaView) -> list[SchemaDifference]:
    """What differs between the curated and the inferred schema, feature by feature (in name order).

    Descriptions are left out: they are prose, not constraints.
    """
    differences = []
    for name in sorted(set(curated.names) | set(inferred.names)):
        if name not in inferred.names:
            differences.append(SchemaDifference(name, ONLY_ONE_SIDE, "present", "absent"))
            continue
        if name not in curated.names:
            differences.append(SchemaDifference(name, ONLY_ONE_SIDE, "absent", "present"))
            continue
        ours, theirs = curated.feature(name), inferred.feature(name)
        if ours.type != theirs.type:
            differences.append(SchemaDifference(name, TYPE, ours.type, theirs.type))
        if _domain_key(ours) != _domain_key(theirs):
            differences.append(SchemaDifference(name, DOMAIN, ours.domain, theirs.domain, _values_detail(ours, theirs)))
        if _presence(ours) != _presence(theirs):
            differences.append(SchemaDifference(name, PRESENCE, _presence(ours), _presence(theirs)))
        if ours.value_count != theirs.value_count:
            differences.append(SchemaDifference(name, VALUE_COUNT, ours.value_count, theirs.value_count))
    return differences


def comparison(curated: SchemaView, inferred: SchemaView) -> SchemaComparison:
    return SchemaComparison(curated, inferred, compare(curated, inferred))


def _feature(feature: schema_pb2.Feature, string_domains: dict[str, list[str]]) -> SchemaFeature:
    domain, values, low, high, categorical = _domain(feature, string_domains)
    presence = feature.presence if feature.HasField("presence") else None
    return SchemaFeature(
        name=feature.name,
        type=schema_pb2.FeatureType.Name(feature.type),
        domain=domain,
        domain_values=values,
        domain_min=low,
        domain_max=high,
        categorical=categorical,
        required=presence is not None and presence.min_fraction >= 1.0,
        min_fraction=presence.min_fraction if presence is not None and presence.HasField("min_fraction") else None,
        min_count=presence.min_count if presence is not None and presence.HasField("min_count") else None,
        value_count=_value_count(feature),
        shape=[dim.size for dim in feature.shape.dim] if feature.HasField("shape") else None,
        not_in_environments=list(feature.not_in_environment),
        description=feature.annotation.comment[0] if feature.annotation.comment else "",
    )


def _domain(
    feature: schema_pb2.Feature, string_domains: dict[str, list[str]]
) -> tuple[str, list[str], float | None, float | None, bool]:
    """The domain in words, a string domain's values, a numeric domain's bounds, and whether it is categorical."""
    kind = feature.WhichOneof("domain_info")
    if kind == "domain":  # a reference to one of the schema's top-level string domains
        values = string_domains.get(feature.domain, [])
        return _count_of(values), values, None, None, False
    if kind == "string_domain":
        values = list(feature.string_domain.value)
        return _count_of(values), values, None, None, False
    if kind in ("int_domain", "float_domain"):
        bounds = getattr(feature, kind)
        low = bounds.min if bounds.HasField("min") else None
        high = bounds.max if bounds.HasField("max") else None
        categorical = kind == "int_domain" and bounds.is_categorical
        text = _range(low, high)
        if categorical:
            text = f"categories {text}" if text else "categories"
        return text, [], low, high, categorical
    if kind == "bool_domain":
        return "true or false", [], None, None, False
    return (kind.replace("_", " ") if kind else ""), [], None, None, False


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    if low is not None:
        return f"at least {low:g}"
    if high is not None:
        return f"at most {high:g}"
    return ""


def _count_of(values: list[str]) -> str:
    return f"{len(values)} value{'s' if len(values) != 1 else ''}"


def _value_count(feature: schema_pb2.Feature) -> str:
    if not feature.HasField("value_count"):
        return ""
    count = feature.value_count
    low = count.min if count.HasField("min") else 0
    if count.HasField("max"):
        return f"exactly {low}" if low == count.max else f"{low} to {count.max}"
    return f"at least {low}"


def _domain_key(feature: SchemaFeature) -> tuple[str, frozenset[str]]:
    """What a domain allows: its words and values, in any order."""
    return feature.domain, frozenset(feature.domain_values)


def _presence(feature: SchemaFeature) -> str:
    """The presence constraint in words. SchemaGen adds ``min_count: 1`` to every feature it saw, which says
    nothing a reader would miss, so a count is named only from 2 up."""
    parts = []
    if feature.min_fraction is not None:
        parts.append("required" if feature.required else f"in at least {feature.min_fraction:.0%} of examples")
    if feature.min_count is not None and feature.min_count > 1:
        parts.append(f"in at least {feature.min_count} examples")
    return ", ".join(parts)


def _values_detail(curated: SchemaFeature, inferred: SchemaFeature) -> str:
    """Which values of a string domain only one side allows."""
    only_curated = [value for value in curated.domain_values if value not in inferred.domain_values]
    only_inferred = [value for value in inferred.domain_values if value not in curated.domain_values]
    parts = []
    if only_curated:
        parts.append(f"only the curated schema allows {_named(only_curated)}")
    if only_inferred:
        parts.append(f"only the inferred schema has {_named(only_inferred)}")
    return "; ".join(parts)


def _named(values: list[str]) -> str:
    shown = ", ".join(values[:_NAMED_VALUES])
    return shown + (f" and {len(values) - _NAMED_VALUES} more" if len(values) > _NAMED_VALUES else "")
