"""Throughput and latency of ``taxi-pipeline serve`` next to calling the same SavedModel in-process (the ceiling).

    .venv/bin/python bench/serving.py --home /tmp/serve_home [--batch 1] [--requests 400] [--concurrency 1,8,32]

Needs a home with a pushed model (``taxi-pipeline run --home DIR`` once). The server runs as its own process, the
way users start it (``taxi-pipeline serve``, loopback only); this process sends a bounded number of requests per
concurrency level over keep-alive connections (asyncio + httpx) and records each request's latency. The ceiling is
``serving_raw`` called directly from as many threads, on the same rows, with tensors built once. Each level is
warmed up first. Both sides share this machine's cores, so the load generator's own CPU counts against the server:
the figures are a lower bound on what the server does with a client elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from models import features  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from runners.environment import prepare_tensorflow  # noqa: E402

MODEL = "taxi"


def _rows(batch: int) -> list[dict[str, Any]]:
    """The first ``batch`` rows of the bundled data as JSON instances (empty cells as 0, as serving_raw needs)."""
    with (PROJECT_DIR / "data" / "taxi.csv").open(newline="") as handle:
        rows = [row for _, row in zip(range(batch), csv.DictReader(handle), strict=False)]
    instances = []
    for row in rows:
        instance: dict[str, Any] = {}
        for name in features.FEATURES:
            value = features.parse_cell(name, row[name])
            instance[name] = value if value is not None else ("" if name in features.STRING_COLUMNS else 0)
        instances.append(instance)
    return instances


def _summary(latencies: list[float], elapsed: float) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * len(ordered))) - 1)]
    return len(ordered) / elapsed, statistics.median(ordered) * 1000, p99 * 1000


async def _http_level(url: str, body: bytes, concurrency: int, requests: int) -> tuple[float, float, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker(count: int, latencies: list[float]) -> None:
            for _ in range(count):
                start = time.perf_counter()
                answer = await client.post(f"/v1/models/{MODEL}:predict", content=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                if answer.status_code != 200:
                    raise RuntimeError(f"{answer.status_code}: {answer.text}")

        async def run(total: int) -> tuple[list[float], float]:
            latencies: list[float] = []
            shares = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
            start = time.perf_counter()
            await asyncio.gather(*(worker(share, latencies) for share in shares))
            return latencies, time.perf_counter() - start

        await run(max(concurrency * 2, 20))  # warm-up: connections opened, threads started
        latencies, elapsed = await run(requests)
    return _summary(latencies, elapsed)


def _thread_level(call: Callable[[], Any], concurrency: int, requests: int) -> tuple[float, float, float]:
    def run(total: int) -> tuple[list[float], float]:
        latencies: list[float] = []
        shares = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]

        def worker(count: int) -> None:
            for _ in range(count):
                start = time.perf_counter()
                call()
                latencies.append(time.perf_counter() - start)

        threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return latencies, time.perf_counter() - start

    run(max(concurrency * 2, 20))
    return _summary(*run(requests))


def _start_server(home: str, port: int, workers: int) -> subprocess.Popen[str]:
    command = [
        str(Path(sys.executable).parent / "taxi-pipeline"),
        *("serve", "--home", home, "--port", str(port), "--poll-seconds", "0", "--workers", str(workers)),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_ready(process: subprocess.Popen[str], url: str) -> None:
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read() if process.stderr else ''}")
        try:
            if httpx.get(f"{url}/v1/models/{MODEL}", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not come up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=str(PROJECT_DIR / "pipeline_home"), help="home with a pushed model")
    parser.add_argument("--batch", type=int, default=1, help="rows per request (1)")
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level (400)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (1,8,32)")
    parser.add_argument("--workers", type=int, default=4, help="the server's prediction threads (4)")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]

    config = load_config("local", home=args.home)
    model_dir = Path(config.serving_model_dir)
    versions = sorted((p for p in model_dir.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    if not versions:
        sys.exit(f"no pushed model in {model_dir}; run `taxi-pipeline run --home {args.home}` first")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = _start_server(args.home, port, args.workers)  # starts loading while this process loads TensorFlow
    try:
        prepare_tensorflow()
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        instances = _rows(args.batch)
        body = json.dumps({"instances": instances}).encode()
        signature = tf.saved_model.load(str(versions[-1])).signatures["serving_raw"]
        specs = signature.structured_input_signature[1]
        tensors = {n: tf.constant([row[n] for row in instances], dtype=s.dtype) for n, s in specs.items()}
        _wait_ready(server, url)

        results = []
        for level in levels:
            served = asyncio.run(_http_level(url, body, level, args.requests))
            ceiling = _thread_level(lambda: signature(**tensors), level, args.requests)
            results.append((level, served, ceiling))
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"\nmodel version {versions[-1].name}, batch {args.batch}, {args.requests} requests per level, "
        f"server --workers {args.workers}, {os.cpu_count()} CPUs (client and server share them)\n"
    )
    header = f"{'concurrency':>11} | {'HTTP req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | "
    header += f"{'in-process/s':>12} {'p50 ms':>7} {'p99 ms':>7} | {'HTTP/in-proc':>12}"
    print(header)
    print("-" * len(header))
    for level, (rps, p50, p99), (crps, cp50, cp99) in results:
        print(
            f"{level:>11} | {rps:>10.0f} {p50:>7.2f} {p99:>7.2f} | {crps:>12.0f} {cp50:>7.2f} {cp99:>7.2f} | "
            f"{rps / crps:>12.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
