"""Benchmark: ExampleGen on one CSV, TFX's CsvExampleGen executor against ours (``tfx_compat/csv_example_gen.py``).

Each executor runs in its own process (TFX's executor ``Do``, in-process Beam, our 4:1 train/eval hash split,
GZIP TFRecords), timed from the call to its return; the parent reads the child's peak RSS from ``wait4``. Then
both outputs are compared split by split: the same examples, in any order (ExampleGen assigns a split by a hash of
each example, so the same examples land in the same splits), each compared as its deterministic serialization.

    python -m bench.example_gen --csv /tmp/taxi-scale-data/1.5M/taxi.csv

The inputs of ``bench/scale.py`` (``/tmp/taxi-scale-data/<size>/taxi.csv``) are made by ``python -m bench.scale``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

EXECUTORS = ("tfx", "ours")


def run_executor(kind: str, csv: Path, output: Path) -> float:
    """Runs one ExampleGen executor on the folder holding only ``csv``; seconds its ``Do`` took."""
    from tfx.components.example_gen.csv_example_gen import executor as tfx_executor
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts, standard_component_specs

    from pipeline.config import load_config
    from pipeline.pipeline import example_splits
    from tfx_compat import csv_example_gen

    input_base = output / "input"
    input_base.mkdir(parents=True)
    os.symlink(csv, input_base / csv.name)
    examples = standard_artifacts.Examples()
    examples.uri = str(output / "examples")
    properties = csv_example_gen.exec_properties(str(input_base), example_splits(load_config()))
    executor_class = tfx_executor.Executor if kind == "tfx" else csv_example_gen.Executor
    context = base_beam_executor.BaseBeamExecutor.Context(tmp_dir=str(output / "tmp"), unique_id=kind)
    started = time.perf_counter()
    executor_class(context).Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, properties)
    return time.perf_counter() - started


def split_digests(examples: Path) -> dict[str, list[str]]:
    """Per split, the sorted SHA-1s of its examples, each serialized deterministically (ours writes them so, TFX's
    executor in protobuf's map order: the same messages, other bytes)."""
    import tensorflow as tf

    result = {}
    for split in sorted(examples.glob("Split-*")):
        files = sorted(str(path) for path in split.glob("*.gz"))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()
        result[split.name] = sorted(
            hashlib.sha1(tf.train.Example.FromString(record).SerializeToString(deterministic=True)).hexdigest()
            for record in records
        )
    return result


def _child(kind: str, csv: Path, output: Path) -> int:
    seconds = run_executor(kind, csv, output)
    (output / "seconds.json").write_text(json.dumps(seconds))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--only", choices=EXECUTORS, help="run one executor (default: both, then compare)")
    parser.add_argument("--child", choices=EXECUTORS, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    csv = args.csv.resolve()
    if args.child:
        return _child(args.child, csv, args.output)

    work = Path(tempfile.mkdtemp(prefix="bench-example-gen-"))
    figures = {}
    try:
        for kind in [args.only] if args.only else EXECUTORS:
            output = work / kind
            command = [sys.executable, "-m", "bench.example_gen", "--csv", str(csv), "--child", kind]
            started = time.perf_counter()
            with open(work / f"{kind}.log", "wb") as log:
                process = subprocess.Popen([*command, "--output", str(output)], stdout=log, stderr=subprocess.STDOUT)
                _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
            if os.waitstatus_to_exitcode(status) != 0:
                print((work / f"{kind}.log").read_text()[-3000:])
                raise SystemExit(f"{kind} ExampleGen failed")
            seconds = json.loads((output / "seconds.json").read_text())
            figures[kind] = (seconds, wall, usage.ru_maxrss / 1024 / 1024)
            print(f"  {kind:5} ExampleGen {seconds:7.1f} s (process {wall:6.1f} s), peak RSS {figures[kind][2]:.2f} GB")
        if len(figures) == 2:
            digests = {kind: split_digests(work / kind / "examples") for kind in EXECUTORS}
            same = digests["tfx"] == digests["ours"]
            counts = {split: len(records) for split, records in digests["ours"].items()}
            print(
                f"\n{csv} ({csv.stat().st_size / 1e6:.0f} MB): examples per split {counts}; "
                f"{'the same examples in the same splits' if same else 'OUTPUTS DIFFER'}"
            )
            tfx, ours = figures["tfx"], figures["ours"]
            print(f"ours against TFX's: {ours[0] / tfx[0]:.2f}x the time, {ours[2] / tfx[2]:.2f}x the peak memory")
            return 0 if same else 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
