"""Throughput and latency of ``taxi-pipeline serve`` over REST and gRPC next to calling the SavedModel in-process.

    .venv/bin/python -m bench.serving --home /tmp/serve_home [--batch 1] [--requests 2000] [--concurrency 1,8,32]
        [--rounds 3]

Needs a home with a pushed model (``taxi-pipeline run --home DIR`` once); its newest version is copied into a
home of the bench's own, which the server serves. The server (``serving/``, whose ``app.py``, ``grpc_api.py`` and
``batching.py`` are the request path) runs as its own process, the way users start it (``taxi-pipeline serve``,
``cli/serve.py``; loopback only); this process sends a bounded number of requests per concurrency level, over
REST on keep-alive connections and over gRPC with TF Serving's stub on one channel (as TF Serving's clients do),
and records each request's latency. The ceiling is ``serving_default`` called directly from as many threads, on
the same rows, with tensors built once. Each level is warmed up first. The three are measured in turn
``--rounds`` times per level and the medians printed, each ratio taken within its round: on the shared 2-core
development machine one measurement of the same code moved by up to 2x within an hour.

Then a hot swap under load: REST and gRPC clients at ``--swap-concurrency`` each while a new version is copied
in the way the Pusher writes one; every answer is checked, and the versions that answered are counted.

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
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
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


async def _timed_level(callers: list[Callable[[], Awaitable[None]]], requests: int) -> tuple[float, float, float]:
    """Each caller (one per concurrent client) sends its share of ``requests`` one after another, after a warm-up;
    a caller raises on a wrong answer, which ends the bench. Returns req/s, p50 and p99 in ms."""
    concurrency = len(callers)

    async def worker(call: Callable[[], Awaitable[None]], count: int, latencies: list[float]) -> None:
        for _ in range(count):
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    async def run(total: int) -> tuple[list[float], float]:
        latencies: list[float] = []
        shares = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
        start = time.perf_counter()
        await asyncio.gather(*(worker(call, share, latencies) for call, share in zip(callers, shares, strict=True)))
        return latencies, time.perf_counter() - start

    await run(max(concurrency * 2, 20))  # warm-up: connections opened, threads started
    return _summary(*await run(requests))


async def _http_level(url: str, body: bytes, concurrency: int, requests: int) -> tuple[float, float, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def call() -> None:
            answer = await client.post(f"/v1/models/{MODEL}:predict", content=body, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"{answer.status_code}: {answer.text}")

        return await _timed_level([call] * concurrency, requests)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: writes a prepared request, then reads exactly one response."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None
        self.version = ""  # the X-Model-Version header of the last answer

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
            elif name.strip().lower() == b"x-model-version":
                self.version = value.strip().decode()
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

    def caller(connection: _Connection) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            status, answer = await connection.exchange(request)
            if status != 200:
                raise RuntimeError(f"{status}: {answer[:200]!r}")

        return call

    return await _timed_level([caller(connection) for connection in connections], requests)


def _predict_request(instances: list[dict[str, Any]], specs: dict[str, Any]) -> Any:
    """A PredictRequest as TF Serving's clients build one: a ``[batch]`` tensor per input, in the model's dtypes."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest(model_spec={"name": MODEL})
    for name, spec in specs.items():
        values = [row[name].encode() if spec.dtype == tf.string else row[name] for row in instances]
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=spec.dtype))
    return request


async def _grpc_level(
    port: int, request: Any, rows: int, concurrency: int, requests: int
) -> tuple[float, float, float]:
    """``concurrency`` callers on one channel (HTTP/2 carries them side by side), each waiting for its answer."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        first = await stub.Predict(request, timeout=60)
        if len(first.outputs["probabilities"].float_val) != rows:
            raise RuntimeError(f"unexpected answer: {first}")

        async def call() -> None:
            await stub.Predict(request, timeout=60)  # a failed call raises, which ends the bench

        return await _timed_level([call] * concurrency, requests)


async def _hot_swap(
    port: int, grpc_port: int, body: bytes, request: Any, concurrency: int, push: Callable[[], int]
) -> dict[str, Any]:
    """REST and gRPC load while ``push`` (in a thread) copies a new version in; counts answers, failures, versions.

    The load runs until the new version has answered over both front ends for a second.
    """
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    head = (
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    rest_request = head.encode() + body
    loop = asyncio.get_running_loop()
    counts = {"rest": 0, "grpc": 0, "failed": 0}
    versions: dict[str, set[int]] = {"rest": set(), "grpc": set()}
    pushed: asyncio.Future[int] = loop.create_future()
    stop = asyncio.Event()

    async def rest_worker() -> None:
        connection = (await loop.create_connection(_Connection, "127.0.0.1", port))[1]
        while not stop.is_set():
            status, _ = await connection.exchange(rest_request)
            counts["rest"] += 1
            if status == 200:
                versions["rest"].add(int(connection.version))
            else:
                counts["failed"] += 1

    async def grpc_worker(stub: Any) -> None:
        while not stop.is_set():
            try:
                answer = await stub.Predict(request, timeout=60)
                versions["grpc"].add(answer.model_spec.version.value)
                counts["grpc"] += 1
            except grpc.RpcError:
                counts["failed"] += 1

    async def swap() -> None:
        await asyncio.sleep(1.0)
        new = await asyncio.to_thread(push)
        pushed.set_result(new)
        while not all(new in seen for seen in versions.values()):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        stop.set()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        start = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(
                swap(),
                *(rest_worker() for _ in range(concurrency)),
                *(grpc_worker(stub) for _ in range(concurrency)),
            ),
            timeout=300,
        )
    return {**counts, "versions": versions, "seconds": time.perf_counter() - start, "new": pushed.result()}


def _medians(
    rounds: list[tuple[tuple[float, float, float], ...]],
) -> tuple[tuple[float, float, float], ...]:
    """Per front end, the median of each figure (req/s, p50, p99) over the rounds."""
    return tuple(
        tuple(statistics.median(figures[front][index] for figures in rounds) for index in range(3))
        for front in range(len(rounds[0]))
    )


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


def _start_server(home: str, port: int, grpc_port: int, options: list[str]) -> subprocess.Popen[str]:
    command = [
        str(Path(sys.executable).parent / "taxi-pipeline"),
        *("serve", "--home", home, "--port", str(port), "--grpc-port", str(grpc_port), "--poll-seconds", "0.5"),
        *options,
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _push_copy(source: Path, version: int) -> int:
    """Copies a version as the Pusher writes one (``saved_model.pb`` last); returns the new version number."""
    target = source.parent / str(version)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("saved_model.pb"))
    shutil.copy2(source / "saved_model.pb", target / "saved_model.pb")
    return version


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
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="REST, gRPC and in-process measured this many times in turn per level; medians printed (3)",
    )
    parser.add_argument("--swap-concurrency", type=int, default=8, help="REST and gRPC callers each in the swap (8)")
    # No default of its own: the server's (serving/settings.py) holds unless given.
    parser.add_argument("--workers", type=int, help="the server's prediction threads (the server's default)")
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="REST load generator: raw asyncio (default) or httpx"
    )
    parser.add_argument(
        "--serve-args", default="", help='more `taxi-pipeline serve` options, e.g. "--max-batch-rows 1"'
    )
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    config = load_config("local", home=args.home)
    model_dir = Path(config.serving_model_dir)
    versions = sorted((p for p in model_dir.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    if not versions:
        sys.exit(f"no pushed model in {model_dir}; run `taxi-pipeline run --home {args.home}` first")

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as home:
        # A home of the bench's own: the hot swap adds a version, which must not land in the user's home.
        served_dir = Path(home) / "serving" / config.serving.model_name
        newest = served_dir / versions[-1].name
        shutil.copytree(versions[-1], newest)
        return _measure(args, levels, home, newest)


def _measure(args: argparse.Namespace, levels: list[int], home: str, newest: Path) -> int:
    port, grpc_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{port}"
    # The server starts loading while this process loads TensorFlow.
    options = ([] if args.workers is None else ["--workers", str(args.workers)]) + args.serve_args.split()
    server = _start_server(home, port, grpc_port, options)
    try:
        prepare_tensorflow()
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        instances = _rows(args.batch)
        body = json.dumps({"instances": instances}).encode()
        signature = tf.saved_model.load(str(newest)).signatures["serving_default"]
        specs = signature.structured_input_signature[1]
        tensors = {n: tf.constant([row[n] for row in instances], dtype=s.dtype) for n, s in specs.items()}
        request = _predict_request(instances, specs)
        _wait_ready(server, url)

        results = []
        for level in levels:
            rounds = []
            for _ in range(args.rounds):
                if args.client == "raw":
                    rest = asyncio.run(_raw_level(port, body, args.batch, level, args.requests))
                else:
                    rest = asyncio.run(_http_level(url, body, level, args.requests))
                over_grpc = asyncio.run(_grpc_level(grpc_port, request, args.batch, level, args.requests))
                ceiling = _thread_level(lambda: signature(**tensors), level, args.requests)
                rounds.append((rest, over_grpc, ceiling))
            results.append((level, rounds))
        push = lambda: _push_copy(newest, int(newest.name) + 1)  # noqa: E731 - one line, named for the call
        swap = asyncio.run(_hot_swap(port, grpc_port, body, request, args.swap_concurrency, push))
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    batching = [line.split(" INFO ", 1)[-1] for line in log.splitlines() if "TensorFlow calls" in line]

    print(
        f"\nmodel version {newest.name}, batch {args.batch}, {args.requests} requests per level and front end, "
        f"server {' '.join(options) or 'defaults'}"
        + f", {args.client} REST client, {os.cpu_count()} CPUs (client and server share them)\n"
    )
    header = f"{'concurrency':>11} | {'REST req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | "
    header += f"{'gRPC req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | "
    header += f"{'in-process/s':>12} {'p50 ms':>7} {'p99 ms':>7} | {'REST/in-proc':>12} {'gRPC/in-proc':>12}"
    print(header)
    print("-" * len(header))
    # Each round's ratios are taken within the round (the three measured minutes apart at most), then the median.
    ratios = [
        [(rest[0] / ceiling[0], over_grpc[0] / ceiling[0]) for rest, over_grpc, ceiling in rounds]
        for _, rounds in results
    ]
    for (level, rounds), pairs in zip(results, ratios, strict=True):
        (rps, p50, p99), (grps, gp50, gp99), (crps, cp50, cp99) = _medians(rounds)
        rest_ratio = statistics.median(rest for rest, _ in pairs)
        grpc_ratio = statistics.median(over_grpc for _, over_grpc in pairs)
        print(
            f"{level:>11} | {rps:>10.0f} {p50:>7.2f} {p99:>7.2f} | {grps:>10.0f} {gp50:>7.2f} {gp99:>7.2f} | "
            f"{crps:>12.0f} {cp50:>7.2f} {cp99:>7.2f} | {rest_ratio:>12.2f} {grpc_ratio:>12.2f}"
        )
    if args.rounds > 1:
        print(f"\nmedians of {args.rounds} rounds; each round's ratios, per level (REST, gRPC):")
        for (level, _), pairs in zip(results, ratios, strict=True):
            print(f"  concurrency {level}: {', '.join(f'{rest:.2f}/{over_grpc:.2f}' for rest, over_grpc in pairs)}")
    seen = {front: sorted(found) for front, found in swap["versions"].items()}
    print(
        f"\nhot swap to version {swap['new']} under load ({args.swap_concurrency} REST + {args.swap_concurrency} "
        f"gRPC callers, {swap['seconds']:.1f} s): {swap['rest']} REST and {swap['grpc']} gRPC answers, "
        f"{swap['failed']} failed; versions that answered: REST {seen['rest']}, gRPC {seen['grpc']}"
    )
    if batching:
        print(f"server: {batching[-1]}")
    return 1 if swap["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
