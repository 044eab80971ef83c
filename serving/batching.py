"""Micro-batching for ``taxi-pipeline serve``: concurrent ``:predict`` requests share one TensorFlow call.

Most of a small request's cost is fixed per TensorFlow call, not per row: turning 16 input columns into tensors
and running a graph of about 900 nodes take far longer than the model's arithmetic, and the first holds the GIL.
So prepared requests (already checked, see ``serving.formats.prepare``) for the same loaded signature wait in one
queue, a *lane*, and go to TensorFlow together: their columns are concatenated, the signature is called once and
its outputs are cut back into each request's rows.

There is no fixed wait by default: a lane calls TensorFlow as soon as it has a free slot, taking everything that
arrived in the meantime (requests that arrive in the same event-loop turn already share a call). A lone request
therefore waits for nothing, and under load the batches grow by themselves, while one call is running. A lane
runs at most ``MAX_IN_FLIGHT`` calls at a time, each at most ``max_batch_rows`` rows (a larger request goes
alone).

A request's answer can only come out of a shared call if it is the one it would get alone: every check that can
fail for one request runs before queueing, and if a shared call still fails (TensorFlow refusing one request's
serialized ``tf.Example``, say) each of its requests is called again on its own, so the error goes to the request
that caused it and the others are answered.

The batcher does not know the wire format: each request brings its own ``encode`` (REST's JSON body, gRPC's
``PredictResponse``), which runs in the worker thread on the request's rows of the outputs, so requests of both
front ends share lanes and calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

from serving.formats import Prepared, call

log = logging.getLogger(__name__)

# TensorFlow calls one lane runs at a time; the requests that arrive while they run make the next call's batch.
MAX_IN_FLIGHT = 1

# Turns one request's rows of the signature's outputs into its answer (a JSON body, a gRPC response message).
Encode = Callable[[Mapping[str, np.ndarray]], Any]


@dataclasses.dataclass
class _Queued:
    prepared: Prepared
    encode: Encode
    future: asyncio.Future[Any]


@dataclasses.dataclass
class _Lane:
    """The queue of one loaded signature; lives only while it has requests queued or running."""

    queue: collections.deque[_Queued] = dataclasses.field(default_factory=collections.deque)
    queued_rows: int = 0
    in_flight: int = 0
    scheduled: asyncio.Handle | None = None  # the pending dispatch, if any


@dataclasses.dataclass
class BatchStats:
    """What the batcher did so far (for tests and for reading a benchmark), counted on the event loop."""

    calls: int = 0
    requests: int = 0
    largest_batch: int = 0  # most requests in one TensorFlow call


class Batcher:
    """Queues prepared requests per signature and runs them in shared TensorFlow calls on ``executor``.

    Used from one event loop only: queues and counters are touched on the loop thread, and worker threads hand
    their results back with one ``call_soon_threadsafe`` per batch, so no lock is needed.
    """

    def __init__(self, executor: Executor, *, max_batch_rows: int, max_wait_s: float):
        """A batcher with no lanes yet; ``ServerSettings`` checks ``max_batch_rows`` and the wait.

        Args:
            executor: where the TensorFlow calls run.
            max_batch_rows: rows one call takes at most; a larger request goes alone.
            max_wait_s: how long a request that finds no call running may wait for others to join it; 0: not at all.
        """
        self._executor = executor
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        # Keyed by the signature's function object: requests of different versions or signatures never mix, and a
        # lane is dropped once idle, so an unloaded version leaves nothing behind.
        self._lanes: dict[int, _Lane] = {}
        self.stats = BatchStats()

    async def predict(self, prepared: Prepared, encode: Encode) -> Any:
        """``encode``'s answer to one prepared request, computed in a TensorFlow call it may share with others."""
        loop = asyncio.get_running_loop()
        key = id(prepared.signature.function)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        future: asyncio.Future[Any] = loop.create_future()
        lane.queue.append(_Queued(prepared, encode, future))
        lane.queued_rows += prepared.rows
        if lane.queued_rows >= self.max_batch_rows:
            if isinstance(lane.scheduled, asyncio.TimerHandle):  # full: waiting for more is pointless
                lane.scheduled.cancel()
                lane.scheduled = None
        elif self.max_wait_s > 0 and lane.scheduled is None and lane.in_flight < MAX_IN_FLIGHT:
            lane.scheduled = loop.call_later(self.max_wait_s, self._dispatch, key, lane, loop)
        if lane.scheduled is None:
            # After this loop turn, so that requests whose bodies arrived in the same turn join this call.
            lane.scheduled = loop.call_soon(self._dispatch, key, lane, loop)
        return await future

    def _dispatch(self, key: int, lane: _Lane, loop: asyncio.AbstractEventLoop) -> None:
        if lane.scheduled is not None:
            lane.scheduled.cancel()  # when called from _finish: the pending one would find nothing to do
            lane.scheduled = None
        while lane.queue and lane.in_flight < MAX_IN_FLIGHT:
            batch: list[_Queued] = []
            rows = 0
            while lane.queue and (not batch or rows + lane.queue[0].prepared.rows <= self.max_batch_rows):
                queued = lane.queue.popleft()
                rows += queued.prepared.rows
                if not queued.future.cancelled():  # the client went away while it waited
                    batch.append(queued)
            lane.queued_rows -= rows
            if not batch:
                continue
            lane.in_flight += 1
            self.stats.calls += 1
            self.stats.requests += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            try:
                self._executor.submit(self._run, key, lane, batch, loop)
            except RuntimeError as error:  # the pool is shut down: the server is stopping
                lane.in_flight -= 1
                for queued in batch:
                    queued.future.set_exception(error)
        if not lane.queue and not lane.in_flight and self._lanes.get(key) is lane:
            del self._lanes[key]

    def _run(
        self,
        key: int,
        lane: _Lane,
        batch: list[_Queued],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """In a worker thread: the shared call, and each request's encoded answer (or its exception)."""
        try:
            outcomes = run_batch([(queued.prepared, queued.encode) for queued in batch])
        except BaseException as error:  # noqa: BLE001 - handed to the requests; the worker must not die silently
            outcomes = [error] * len(batch)
        # RuntimeError: the loop closed while this call ran (the server is shutting down); nobody is waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._finish, key, lane, batch, outcomes)

    def _finish(
        self,
        key: int,
        lane: _Lane,
        batch: list[_Queued],
        outcomes: Sequence[Any],
    ) -> None:
        for queued, outcome in zip(batch, outcomes, strict=True):
            future = queued.future
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        lane.in_flight -= 1
        if self._lanes.get(key) is lane:
            self._dispatch(key, lane, asyncio.get_running_loop())


def run_batch(batch: Sequence[tuple[Prepared, Encode]]) -> list[Any]:
    """Answers prepared requests of one signature with one TensorFlow call (in a worker thread).

    Falls back to one call per request when the shared call fails or its outputs cannot be cut into rows (an
    output without a row per input row), so the outcome of every request is the one it would have alone.

    Args:
        batch: requests whose ``signature`` is the same, each with its ``encode``.

    Returns:
        Per request, in order, its encoded answer or the exception that fails it.
    """
    if len(batch) == 1:
        return [_alone(*batch[0])]
    first = batch[0][0]
    signature = first.signature
    total = sum(prepared.rows for prepared, _ in batch)
    columns = {
        key: list(itertools.chain.from_iterable(prepared.columns[key] for prepared, _ in batch))
        for key in first.columns
    }
    try:
        results = call(signature, columns)
        splittable = all(value.ndim > 0 and len(value) == total for value in results.values())
    except Exception:  # noqa: BLE001 - find out which request it was by calling each alone
        splittable = False
    if not splittable:
        log.debug("shared call of %d requests failed or gave unsplittable outputs; calling each alone", len(batch))
        return [_alone(prepared, encode) for prepared, encode in batch]
    outcomes: list[Any] = []
    start = 0
    for prepared, encode in batch:
        rows = slice(start, start + prepared.rows)
        start += prepared.rows
        try:
            outcomes.append(encode({key: value[rows] for key, value in results.items()}))
        except Exception as error:  # noqa: BLE001 - one answer that cannot be encoded fails only its request
            outcomes.append(error)
    return outcomes


def _alone(prepared: Prepared, encode: Encode) -> Any:
    try:
        return encode(call(prepared.signature, prepared.columns))
    except Exception as error:  # noqa: BLE001 - handed to the request's future, which raises it in the handler
        return error
