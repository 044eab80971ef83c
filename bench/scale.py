"""Benchmark: the default local run on 15 thousand, 150 thousand and 1.5 million trips, cold, as whole processes.

The inputs are made from the bundled data, deterministically: the 15,002 rows, then copies of them with their
money, distance and duration scaled by one factor per row (tips and fare together, so the label keeps its
meaning), the timestamp shifted and the coordinates nudged within the curated schema's domains; the schema, and
so the validation gate, accepts every copy. Each size runs ``taxi-pipeline run`` on a fresh home (the local
profile: three candidates) and prints, per size: wall time, each component's seconds (from ML Metadata), the peak
RSS of the whole process tree, the average CPU utilisation of the tree (100% = one core busy) over the run and
over the Beam-heavy components, and the eval AUC of the winner. TFX's own taxi example runs on the 150k input in
the same invocation, side by side (``bench/_taxi_example.py``).

    .venv/bin/python -m bench.scale                         # 15k, 150k, 1.5M and the TFX example on 150k
    .venv/bin/python -m bench.scale --sizes 15k,150k --set 'beam.args=[...]' --label two-workers

Inputs are generated once into ``--data-dir`` (default ``/tmp/taxi-scale-data``) and reused. This process imports
the standard library and psutil while it times (our reading of ML Metadata runs after each timed process).
A figure over a target is a result, not an error: the exit status is 0 unless a run failed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BUNDLED = REPO / "data" / "taxi.csv"
SIZES = {"15k": 15_002, "150k": 150_000, "1.5M": 1_500_000}
# Components whose work is Beam's (in-process on the local profile): the CPU target is over these.
BEAM_HEAVY = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator_")
TARGETS = {"1.5M seconds": 360, "1.5M peak RSS GB": 3.0, "1.5M/150k time": 10.0, "Beam CPU %": 150}
SAMPLE_SECONDS = 0.5


# --- Inputs ---------------------------------------------------------------------------------------------------


def make_input(rows: int, folder: Path) -> Path:
    """``folder/taxi.csv`` with ``rows`` trips made from the bundled data (see the module text); made once."""
    path = folder / "taxi.csv"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with BUNDLED.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header, source = list(reader.fieldnames or []), list(reader)
    generator = random.Random(rows)  # the same rows for the same size, every time
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, header, lineterminator="\n")
        writer.writeheader()
        for index in range(rows):
            row = source[index % len(source)]
            copy = index // len(source)
            writer.writerow(row if copy == 0 else _jittered(row, copy, generator))
    partial.rename(path)
    return path


def _jittered(row: dict[str, str], copy: int, generator: random.Random) -> dict[str, str]:
    factor = generator.uniform(0.97, 1.03)
    out = dict(row)
    for column in ("fare", "tips", "trip_miles"):
        if out[column]:
            out[column] = f"{float(out[column]) * factor:.2f}"
    if out["trip_seconds"]:
        out["trip_seconds"] = str(round(float(out["trip_seconds"]) * factor))
    if out["trip_start_timestamp"]:
        out["trip_start_timestamp"] = str(int(out["trip_start_timestamp"]) + 600 * copy)
    for column, (low, high) in _COORDINATE_DOMAINS.items():
        if out[column]:
            value = float(out[column]) + generator.uniform(-0.0005, 0.0005)
            out[column] = f"{min(max(value, low), high):.6f}"
    return out


_COORDINATE_DOMAINS = {
    "pickup_latitude": (41.5, 42.2),
    "dropoff_latitude": (41.5, 42.2),
    "pickup_longitude": (-88.1, -87.4),
    "dropoff_longitude": (-88.1, -87.4),
}


# --- One timed process ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    at: float  # seconds since the process started
    cpu_seconds: float  # user + system of the whole tree so far (finished children included once reaped)
    rss_bytes: int  # the live tree's resident memory


@dataclasses.dataclass
class Measured:
    name: str
    seconds: float
    returncode: int
    log: Path
    samples: list[Sample]
    cpu_seconds: float  # of the whole tree, from the kernel's accounting of waited-for children
    started_wall: float  # time.time() at start, to place ML Metadata's component times on the samples

    @property
    def peak_rss_gb(self) -> float:
        return max((sample.rss_bytes for sample in self.samples), default=0) / 1e9

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu_seconds / self.seconds if self.seconds else 0.0

    def cpu_percent_between(self, start: float, end: float) -> float | None:
        """The tree's CPU use between two moments (seconds since start), from the samples around them."""
        inside = [sample for sample in self.samples if start <= sample.at <= end]
        if len(inside) < 2:
            return None
        first, last = inside[0], inside[-1]
        return 100 * (last.cpu_seconds - first.cpu_seconds) / (last.at - first.at)

    def peak_rss_gb_between(self, start: float, end: float) -> float | None:
        inside = [sample.rss_bytes for sample in self.samples if start <= sample.at <= end]
        return max(inside) / 1e9 if inside else None


def _tree_sample(root: psutil.Process, started: float) -> Sample | None:
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    cpu = rss = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            cpu += times.user + times.system + times.children_user + times.children_system
            rss += process.memory_info().rss
        except psutil.Error:
            continue
    return Sample(time.monotonic() - started, cpu, int(rss))


def measured_run(name: str, command: list[str], log: Path, env: dict[str, str], cwd: Path) -> Measured:
    """Runs ``command`` to its exit, sampling its process tree's CPU time and memory twice a second."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"  {name} ... ", end="", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    samples: list[Sample] = []
    with log.open("wb") as handle:
        started, started_wall = time.monotonic(), time.time()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        done = threading.Event()

        def sample() -> None:
            root = psutil.Process(process.pid)
            while not done.wait(SAMPLE_SECONDS):
                if (taken := _tree_sample(root, started)) is not None:
                    samples.append(taken)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = process.wait()
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{seconds:.1f} s" + ("" if returncode == 0 else f"  FAILED (exit {returncode}, log {log})"), flush=True)
    return Measured(name, seconds, returncode, log, samples, cpu, started_wall)


# --- What ML Metadata says about the run -----------------------------------------------------------------------


def component_times(metadata: Path, pipeline_name: str) -> list[dict[str, Any]]:
    """Each executed component's start and end (epoch seconds) and state, from the run's ML Metadata."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from runs.contexts import node_of_executions

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(metadata)
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(connection)
    executions = store.get_executions()
    nodes = node_of_executions(store, executions)
    return [
        {
            "node": nodes.get(execution.id, "?"),
            "start": execution.create_time_since_epoch / 1000,
            "end": execution.last_update_time_since_epoch / 1000,
            "seconds": (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000,
        }
        for execution in sorted(executions, key=lambda execution: execution.create_time_since_epoch)
    ]


def winner_auc(home: Path) -> tuple[str, float | None]:
    """The selected candidate and its eval AUC, from the run's saved report."""
    [report_file] = (home / "runs").glob("*/report.json")
    report = json.loads(report_file.read_text())
    selected = report.get("selected") or ""
    metrics = report.get("candidates", {}).get(selected, {}).get("metrics", {})
    return selected, metrics.get("auc")


# --- The benchmark --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"a comma-separated subset of {', '.join(SIZES)}")
    parser.add_argument("--tfx-size", default="150k", help="the size TFX's example runs on ('' to skip it)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed to taxi-pipeline run")
    parser.add_argument("--label", default="default run", help="what the --set options make of the run")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "taxi-scale-data")
    parser.add_argument("--keep", type=Path, default=None, help="keep homes and logs here (default: removed)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
    unknown = [size for size in [*sizes, args.tfx_size] if size and size not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; known: {', '.join(SIZES)}")

    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="taxi-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"Scale benchmark ({args.label}); {os.cpu_count()} cores; work folder {work}")
    inputs = {}
    for size in {*sizes, *([args.tfx_size] if args.tfx_size else [])}:
        started = time.monotonic()
        inputs[size] = make_input(SIZES[size], args.data_dir / size)
        print(f"  input {size}: {inputs[size]} ({time.monotonic() - started:.1f} s)")

    results: dict[str, Any] = {"label": args.label, "overrides": args.overrides, "sizes": {}}
    failed = False
    for size in sizes:
        home = work / f"ours_{size}"
        shutil.rmtree(home, ignore_errors=True)
        command = [str(VENV_BIN / "taxi-pipeline"), "run", "--home", str(home), "--data", str(inputs[size].parent)]
        for override in args.overrides:
            command += ["--set", override]
        run = measured_run(f"ours, {size}", command, work / "logs" / f"ours_{size}.log", dict(os.environ), REPO)
        failed |= run.returncode != 0
        results["sizes"][size] = _summarise(
            run, home / "metadata.sqlite", "taxi", home if run.returncode == 0 else None
        )
    if args.tfx_size:
        tfx_work = work / f"tfx_example_{args.tfx_size}"
        shutil.rmtree(tfx_work, ignore_errors=True)
        (tfx_work / "data").mkdir(parents=True)
        shutil.copyfile(inputs[args.tfx_size], tfx_work / "data" / "taxi.csv")
        command = [sys.executable, str(REPO / "bench" / "_taxi_example.py"), "--work", str(tfx_work)]
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        run = measured_run(f"TFX example, {args.tfx_size}", command, work / "logs" / "tfx.log", env, tfx_work)
        failed |= run.returncode != 0
        tfx_name = "chicago_taxi_native_keras"
        results["tfx_example"] = {"size": args.tfx_size, **_summarise(run, tfx_work / "metadata.sqlite", tfx_name)}
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"figures written to {args.json}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def _summarise(run: Measured, metadata: Path, pipeline_name: str, home: Path | None = None) -> dict[str, Any]:
    components = component_times(metadata, pipeline_name) if metadata.is_file() else []
    beam = [c for c in components if c["node"].startswith(BEAM_HEAVY) and c["seconds"] > 0]
    beam_cpu_seconds = beam_seconds = 0.0
    for component in components:
        start, end = component["start"] - run.started_wall, component["end"] - run.started_wall
        component["cpu_percent"] = run.cpu_percent_between(start, end)
        component["peak_rss_gb"] = run.peak_rss_gb_between(start, end)
        if component in beam and component["cpu_percent"] is not None:
            beam_cpu_seconds += component["cpu_percent"] * component["seconds"]
            beam_seconds += component["seconds"]
    winner, auc = winner_auc(home) if home is not None else ("", None)
    return {
        "seconds": run.seconds,
        "returncode": run.returncode,
        "peak_rss_gb": run.peak_rss_gb,
        "cpu_percent": run.cpu_percent,
        "beam_cpu_percent": beam_cpu_seconds / beam_seconds if beam_seconds else None,
        "winner": winner,
        "winner_auc": auc,
        "components": components,
        "log": str(run.log),
    }


def _print(results: dict[str, Any]) -> None:
    rows = [(f"ours {size}", figures) for size, figures in results["sizes"].items()]
    if "tfx_example" in results:
        rows.append((f"TFX example {results['tfx_example']['size']}", results["tfx_example"]))
    print(f"\n{results['label']}: whole process, cold")
    print(f"  {'run':<18}{'seconds':>9}{'peak RSS GB':>13}{'CPU %':>7}{'Beam CPU %':>12}  winner (eval AUC)")
    for name, figures in rows:
        beam = figures["beam_cpu_percent"]
        auc = figures["winner_auc"]
        winner = f"{figures['winner']} ({auc:.4f})" if auc is not None else figures["winner"] or "-"
        print(
            f"  {name:<18}{figures['seconds']:>9.1f}{figures['peak_rss_gb']:>13.2f}{figures['cpu_percent']:>7.0f}"
            f"{'-' if beam is None else format(beam, '.0f'):>12}  {winner}"
        )
    print("\nSeconds per component (the process tree's CPU % and peak RSS meanwhile)")
    for name, figures in rows:
        parts = [
            f"{c['node']} {c['seconds']:.1f}"
            + ("" if c["cpu_percent"] is None else f" ({c['cpu_percent']:.0f}%, {c['peak_rss_gb']:.1f} GB)")
            for c in figures["components"]
        ]
        print(f"  {name}: " + ", ".join(parts))
    sizes = results["sizes"]
    if "1.5M" in sizes and "150k" in sizes:
        ratio = sizes["1.5M"]["seconds"] / sizes["150k"]["seconds"]
        print(f"\ntime(1.5M) / time(150k) = {ratio:.1f} (target <= {TARGETS['1.5M/150k time']:.0f})")
    if "1.5M" in sizes:
        big = sizes["1.5M"]
        print(
            f"1.5M: {big['seconds']:.0f} s (target <= {TARGETS['1.5M seconds']}), peak RSS {big['peak_rss_gb']:.2f} GB "
            f"(target <= {TARGETS['1.5M peak RSS GB']})"
        )


if __name__ == "__main__":
    sys.exit(main())
