"""Rows of the bundled taxi data for tests: read from the CSV, typed per models/features.py, as tf.Examples.

The encoder here is the tests' own, written from the schema's column types, so that comparing a served or exported
model against it checks the code under test rather than repeating it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import tensorflow as tf

from models import features
from pipeline.config import PROJECT_DIR


def read_rows(limit: int) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the first ``limit`` rows of data/taxi.csv, as text."""
    with (PROJECT_DIR / "data" / "taxi.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for _, row in zip(range(limit), reader, strict=False)]
        return list(reader.fieldnames or []), rows


def serialized_example(values: dict[str, Any]) -> bytes:
    """A tf.Example of typed values (``features.parse_cell``); None values are left out, as missing."""
    feature = {}
    for name, value in values.items():
        if value is None:
            continue
        if name in features.STRING_COLUMNS:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif name in features.INT_COLUMNS:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_csv(folder: Path, header: list[str], rows: list[dict[str, str]]) -> str:
    """Writes ``rows`` as ``folder/taxi.csv`` (creating the folder) and returns the folder, a pipeline data root."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "taxi.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return str(folder)
