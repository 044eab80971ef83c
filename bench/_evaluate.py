"""Scores pushed SavedModels on the same CSV rows and reads per-component times from ML Metadata.

Run by ``local_run.py`` as its own process, after the timed runs, so TensorFlow is never imported by the process
that does the timing.

Rows are fed as serialized ``tf.train.Example`` to each model's examples signature (ours: ``serving_tf_example``,
the TFX example's: ``serving_default``), every column typed
the way CsvExampleGen infers it from the CSV (a column whose non-empty cells are all integers -> ``int64_list``,
all numbers -> ``float_list``, else ``bytes_list``; empty cells omitted), so both models parse exactly what their
pipelines trained on. The label is the one both pipelines compute: ``tips > 0.2 * fare`` in float32, missing
values as 0.

Two row sets are scored:

- ``holdout``: the rows that are in the eval split of *every* given pipeline's ExampleGen output, i.e. rows no
  compared model trained on. ExampleGen splits by a hash of the serialized example, so with our 4:1 split and the
  example's default 2:1 split this is about 1/5 * 1/3 of the data (~1,000 rows), the same rows for both models;
- ``all``: all CSV rows (each model trained on most of them: ours on ~80%, the example on ~67%).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_INT = re.compile(r"-?\d+")
LABEL_TIP_SHARE = np.float32(0.2)

# A row's identity: (column, canonical value) for every non-empty column, sorted.
RowKey = tuple[tuple[str, str], ...]


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def infer_column_types(rows: Sequence[dict[str, str]]) -> dict[str, str]:
    """``int``, ``float`` or ``bytes`` per column, by the same rule CsvExampleGen uses to type CSV cells."""
    types: dict[str, str] = {}
    for column in rows[0]:
        cells = [row[column] for row in rows if row[column] != ""]
        if all(_INT.fullmatch(cell) for cell in cells):
            types[column] = "int"
        elif all(_is_float(cell) for cell in cells):
            types[column] = "float"
        else:
            types[column] = "bytes"
    return types


def _canonical(kind: str, value: Any) -> str:
    """One spelling per value whatever its source (CSV text or a parsed Example), for matching rows."""
    if kind == "int":
        return str(int(value))
    if kind == "float":
        return repr(float(np.float32(value)))
    return value.decode() if isinstance(value, bytes) else str(value)


def csv_row_key(row: dict[str, str], types: dict[str, str]) -> RowKey:
    """The key of a CSV row, comparable with ``example_key`` of the Example ExampleGen made from it."""
    return tuple(sorted((name, _canonical(types[name], text)) for name, text in row.items() if text != ""))


def example_key(serialized: bytes) -> RowKey:
    """The key of one serialized Example read back from an ExampleGen split."""
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    items: list[tuple[str, str]] = []
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = {"int64_list": ("int", feature.int64_list.value), "float_list": ("float", feature.float_list.value)}
        values["bytes_list"] = ("bytes", feature.bytes_list.value)
        if kind is None or len(values[kind][1]) == 0:
            continue  # an empty cell: absent, as in the CSV key
        items.append((name, _canonical(values[kind][0], values[kind][1][0])))
    return tuple(sorted(items))


def split_keys(split_dir: Path) -> set[RowKey]:
    """Keys of every example in one ExampleGen split folder (GZIP TFRecord files)."""
    import tensorflow as tf

    files = sorted(str(path) for path in split_dir.glob("*.gz"))
    if not files:
        raise FileNotFoundError(f"no *.gz TFRecord files in {split_dir}")
    return {example_key(record.numpy()) for record in tf.data.TFRecordDataset(files, compression_type="GZIP")}


def to_example(row: dict[str, str], types: dict[str, str]) -> bytes:
    """One CSV row as a serialized ``tf.train.Example``, typed by column, empty cells left out."""
    import tensorflow as tf

    feature: dict[str, tf.train.Feature] = {}
    for name, text in row.items():
        if text == "":
            continue
        if types[name] == "int":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(text)]))
        elif types[name] == "float":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(text)]))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def big_tipper(row: dict[str, str]) -> int:
    """The label both pipelines train on: the tip is more than 20% of the fare (float32, missing as 0)."""
    tips = np.float32(row["tips"] or 0)
    fare = np.float32(row["fare"] or 0)
    return int(tips > fare * LABEL_TIP_SHARE)


def predict(model_dir: Path, serialized: list[bytes], batch_size: int = 2048) -> tuple[np.ndarray, str, str]:
    """Positive-class probabilities from the signature that takes serialized examples (ours: ``serving_tf_example``,
    the TFX example's: ``serving_default``); also how it was called (``name(input=...)``) and its output key."""
    import tensorflow as tf

    model = tf.saved_model.load(str(model_dir))
    name = "serving_tf_example" if "serving_tf_example" in model.signatures else "serving_default"
    signature = model.signatures[name]
    _, kwargs = signature.structured_input_signature
    (input_name,) = kwargs  # both models take one string tensor of serialized examples
    output_keys = sorted(signature.structured_outputs)
    if len(output_keys) != 1:
        raise ValueError(f"{model_dir}: expected one output in {name}, found {output_keys}")
    (output_key,) = output_keys
    chunks = []
    for start in range(0, len(serialized), batch_size):
        batch = tf.constant(serialized[start : start + batch_size])
        chunks.append(signature(**{input_name: batch})[output_key].numpy().reshape(-1))
    return np.concatenate(chunks), f"{name}({input_name}=...)", output_key


def metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC AUC and accuracy at threshold 0.5."""
    from sklearn.metrics import roc_auc_score

    return {
        "rows": int(len(labels)),
        "positive_rate": float(labels.mean()),
        "auc": float(roc_auc_score(labels, scores)),
        "accuracy": float(((scores > 0.5).astype(int) == labels).mean()),
    }


def component_times(metadata_path: Path) -> list[dict[str, Any]]:
    """Per pipeline run (oldest first): each component execution's state and seconds, as MLMD recorded them."""
    from runs import report
    from runs.store import open_sqlite

    store = open_sqlite(metadata_path)
    runs = []
    for pipeline in store.get_contexts_by_type("pipeline"):
        for run_id in report.run_ids(store, pipeline.name):
            components = report.read_components(store, pipeline.name, run_id)
            nodes = [{"node": c.node_id, "state": c.state, "seconds": c.seconds} for c in components]
            runs.append({"run_id": run_id, "components": nodes})
    return runs


def _pairs(values: Iterable[str], flag: str) -> dict[str, Path]:
    result = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            raise SystemExit(f"{flag} expects NAME=PATH, got {value!r}")
        result[name] = Path(path)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Prints one JSON object: holdout and all-row metrics per model, and MLMD component times per pipeline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True, type=Path)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR", help="SavedModel to score")
    parser.add_argument(
        "--eval-split", action="append", default=[], metavar="NAME=DIR", help="ExampleGen Split-eval folder"
    )
    parser.add_argument("--metadata", action="append", default=[], metavar="NAME=FILE", help="MLMD SQLite file")
    args = parser.parse_args(argv)

    with args.csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    types = infer_column_types(rows)
    serialized = [to_example(row, types) for row in rows]
    labels = np.array([big_tipper(row) for row in rows])

    holdout = np.ones(len(rows), dtype=bool)
    splits = _pairs(args.eval_split, "--eval-split")
    split_sizes: dict[str, dict[str, int]] = {}
    for name, split_dir in splits.items():
        keys = split_keys(split_dir)
        in_split = np.array([csv_row_key(row, types) in keys for row in rows])
        # Every eval example must be found among the CSV rows, or the keys do not identify rows the same way.
        split_sizes[name] = {"eval_examples": len(keys), "matched_csv_rows": int(in_split.sum())}
        if in_split.sum() != len(keys):
            raise SystemExit(f"{name}: only {in_split.sum()} of {len(keys)} eval examples matched a CSV row")
        holdout &= in_split

    result: dict[str, Any] = {
        "csv": str(args.csv),
        "column_types": types,
        "holdout_definition": f"rows in the eval split of: {', '.join(splits) or '(none given: all rows)'}",
        "eval_splits": split_sizes,
        "models": {},
        "component_times": {},
    }
    for name, model_dir in _pairs(args.model, "--model").items():
        scores, signature, output_key = predict(model_dir, serialized)
        result["models"][name] = {
            "model_dir": str(model_dir),
            "signature": f"{signature} -> {output_key}",
            "holdout": metrics(labels[holdout], scores[holdout]),
            "all": metrics(labels, scores),
        }
    for name, path in _pairs(args.metadata, "--metadata").items():
        result["component_times"][name] = component_times(path)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
