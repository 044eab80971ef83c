"""The one list of the taxi data's columns, the label, and how each feature is preprocessed.

Everything else (preprocessing_fn, model builder, serving signatures, input checks, the curated schema's tests)
reads feature names from here, so adding or renaming a feature is a change in this file only.
"""

from __future__ import annotations

# Numeric features standardised to z-scores.
DENSE_FLOAT_FEATURES: tuple[str, ...] = ("trip_miles", "fare", "trip_seconds")

# Coordinates cut into quantile buckets: raw latitudes are not linearly related to tipping.
BUCKET_FEATURES: tuple[str, ...] = (
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
)
BUCKET_COUNT = 10

# Integer-coded categories, with the largest value each may take (the embedding sizes follow from these).
CATEGORICAL_INT_FEATURES: dict[str, int] = {
    "trip_start_hour": 24,
    "trip_start_day": 8,
    "trip_start_month": 13,
    "pickup_community_area": 78,
    "dropoff_community_area": 78,
}

# Very high-cardinality integer ids (census tracts) are hashed rather than given a full vocabulary.
HASHED_INT_FEATURES: dict[str, int] = {
    "pickup_census_tract": 100,
    "dropoff_census_tract": 100,
}

# String categories turned into integer ids through a vocabulary computed over the training data.
VOCAB_FEATURES: tuple[str, ...] = ("payment_type", "company")
VOCAB_SIZE = 1000
OOV_BUCKETS = 10

# Columns present in the CSV that are not model inputs.
LABEL_SOURCE = "tips"  # the label is derived from the tip and the fare
FARE = "fare"
TIP_SHARE_THRESHOLD = 0.2  # a "big tipper" left more than 20% of the fare
UNUSED_COLUMNS: tuple[str, ...] = ("trip_start_timestamp",)

LABEL = "big_tipper"

# Slices the Evaluators report metrics on by default (`evaluation.slice_features` in the config).
SLICE_FEATURES: tuple[str, ...] = ("trip_start_hour", "payment_type")

FEATURES: tuple[str, ...] = (
    *DENSE_FLOAT_FEATURES,
    *BUCKET_FEATURES,
    *CATEGORICAL_INT_FEATURES,
    *HASHED_INT_FEATURES,
    *VOCAB_FEATURES,
)

# Every column a CSV must have, in any order.
CSV_COLUMNS: frozenset[str] = frozenset({*FEATURES, LABEL_SOURCE, *UNUSED_COLUMNS})

STRING_COLUMNS: frozenset[str] = frozenset(VOCAB_FEATURES)
INT_COLUMNS: frozenset[str] = frozenset(
    {*CATEGORICAL_INT_FEATURES, *HASHED_INT_FEATURES, "trip_seconds", "trip_start_timestamp"}
)
FLOAT_COLUMNS: frozenset[str] = frozenset(CSV_COLUMNS - STRING_COLUMNS - INT_COLUMNS)


def parse_cell(name: str, text: str) -> str | int | float | None:
    """A CSV cell of column ``name`` as the value its schema type means; None for an empty (missing) cell."""
    if text == "":
        return None
    if name in STRING_COLUMNS:
        return text
    if name in INT_COLUMNS:
        return int(text)
    return float(text)


def transformed_name(key: str) -> str:
    """Name of a feature after Transform; kept distinct so raw and transformed tensors are never confused."""
    return f"{key}_xf"
