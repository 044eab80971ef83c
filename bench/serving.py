"""Throughput and latency of ``taxi-pipeline serve`` next to calling the same SavedModel in-process (the ceiling).

    .venv/bin/python bench/serving.py --home /tmp/serve_home [--batch 1] [--requests 2000] [--concurrency 1,8,32]

Needs a home with a pushed model (``taxi-pipeline run --home DIR`` once). The server (``serving/``, whose
``app.py`` and ``batching.py`` are the request path) runs as its own process, the way users start it
(``taxi-pipeline serve``, ``cli/serve.py``; loopback only); this process sends a bounded number of requests per
concurrency level over keep-alive connections and records each request's latency. The ceiling is ``serving_default``
called directly from as many threads, on the same rows, with tensors built once. Each level is warmed up first.

Both sides share this machine's cores, so the load generator's own CPU counts against the server. The default
generator (``--client raw``) therefore writes a prepared HTTP/1.1 request on each connection and reads the answer
with a few lines of asyncio (status checked on every answer, the first body checked to hold one prediction per
row): it costs well under 0.2 ms a request. ``--client httpx`` uses httpx's async client as before, for comparison;
on the 2-core development machine httpx alone tops out at 250-300 requests/s against a server that does nothing,
so with it the bench measured the client more than the server.
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

from models import features
from pipeline.config import PROJECT_DIR, load_config
from tfx_compat import prepare_tensorflow

MODEL = "taxi"


def _rows(batch: int) -> list[dict[str, Any]]:
    """The first ``batch`` rows of the bundled data as JSON instances (empty cells as 0, as serving_default needs)."""
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


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: writes a prepared request, then reads exactly one response."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._answer is None or self._answer.done():
            return
        length = None
        for line in bytes(self._buffer[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            self._answer.set_exception(RuntimeError("an answer without Content-Length"))
            return
        if len(self._buffer) >= end + 4 + length:
            status = int(self._buffer[9:12])
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            self._answer.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ConnectionError(f"the server closed the connection ({exc})"))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return await self._answer


async def _raw_level(port: int, body: bytes, rows: int, concurrency: int, requests: int) -> tuple[float, float, float]:
    head = (
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body
    loop = asyncio.get_running_loop()
    connections = [(await loop.create_connection(_Connection, "127.0.0.1", port))[1] for _ in range(concurrency)]
    status, first = await connections[0].exchange(request)
    if status != 200 or len(json.loads(first)["predictions"]) != rows:
        raise RuntimeError(f"unexpected answer {status}: {first[:200]!r}")

    async def worker(connection: _Connection, count: int, latencies: list[float]) -> None:
        for _ in range(count):
            start = time.perf_counter()
            status, answer = await connection.exchange(request)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"{status}: {answer[:200]!r}")

    async def run(total: int) -> tuple[list[float], float]:
        latencies: list[float] = []
        shares = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
        start = time.perf_counter()
        await asyncio.gather(*(worker(c, share, latencies) for c, share in zip(connections, shares, strict=True)))
        return latencies, time.perf_counter() - start

    await run(max(concurrency * 2, 20))  # warm-up
    return _summary(*await run(requests))


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


def _start_server(home: str, port: int, options: list[str]) -> subprocess.Popen[str]:
    command = [
        str(Path(sys.executable).parent / "taxi-pipeline"),
        *("serve", "--home", home, "--port", str(port), "--poll-seconds", "0"),
        *options,
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
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level (2000)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (1,8,32)")
    # No default of its own: the server's (serving/settings.py) holds unless given.
    parser.add_argument("--workers", type=int, help="the server's prediction threads (the server's default)")
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="load generator: raw asyncio (default) or httpx"
    )
    parser.add_argument(
        "--serve-args", default="", help='more `taxi-pipeline serve` options, e.g. "--max-batch-rows 1"'
    )
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
    # The server starts loading while this process loads TensorFlow.
    options = ([] if args.workers is None else ["--workers", str(args.workers)]) + args.serve_args.split()
    server = _start_server(args.home, port, options)
    try:
        prepare_tensorflow()
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        instances = _rows(args.batch)
        body = json.dumps({"instances": instances}).encode()
        signature = tf.saved_model.load(str(versions[-1])).signatures["serving_default"]
        specs = signature.structured_input_signature[1]
        tensors = {n: tf.constant([row[n] for row in instances], dtype=s.dtype) for n, s in specs.items()}
        _wait_ready(server, url)

        results = []
        for level in levels:
            if args.client == "raw":
                served = asyncio.run(_raw_level(port, body, args.batch, level, args.requests))
            else:
                served = asyncio.run(_http_level(url, body, level, args.requests))
            ceiling = _thread_level(lambda: signature(**tensors), level, args.requests)
            results.append((level, served, ceiling))
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    batching = [line.split(" INFO ", 1)[-1] for line in log.splitlines() if "TensorFlow calls" in line]

    print(
        f"\nmodel version {versions[-1].name}, batch {args.batch}, {args.requests} requests per level, "
        f"server {' '.join(options) or 'defaults'}"
        + f", {args.client} client, {os.cpu_count()} CPUs (client and server share them)\n"
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
    if batching:
        print(f"\nserver: {batching[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
