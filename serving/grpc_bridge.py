"""gRPC through ``taxi-grpc-front``: a Go program speaks gRPC, this process answers each call it forwards.

Why: on a 2-core machine, grpcio's own per-call work in Python (grpc.aio's completion-queue hand-offs, on the
server's event loop and beside the TensorFlow worker) kept gRPC at 0.6-0.7x of the in-process ceiling at
concurrency 8, where REST passed it. grpc-go does that work in its own process, off this process's GIL, for a
fraction of the CPU: 0.87-0.94x in the same rounds (docs/SERVING.md). The program only moves bytes
(``serving/grpc_front/main.go``); the requests are parsed, checked, batched and answered here, by the functions
the in-process grpc.aio servicers call (``serving.grpc_api``), so both transports give the same answers.

The program is built by ``make`` into the venv's ``bin/`` (Go and grpc-go from Debian). Where it is missing (no Go
toolchain), ``start_grpc_server`` serves gRPC with grpc.aio in this process instead (``serving.grpc_api``): slower,
the same answers.

The socket protocol (little-endian), one Unix socket per server in a private temporary folder: a call is
(payload length u32, call id u32, method u8, the serialized request); an answer is (length u32, call id u32,
gRPC status code u8, the serialized response, or the status message when the code is not 0). Answers come in any
order; the program matches them to calls by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

from pipeline.errors import UserError
from serving import grpc_api
from serving.batching import Batcher
from serving.repository import ModelRepository

log = logging.getLogger(__name__)

BINARY = "taxi-grpc-front"
_HEADER = struct.Struct("<IIB")
# How long the program may take to listen and connect before the server gives up on it.
_START_SECONDS = 30
# How long calls in flight may take to be answered when the server stops (grpc.aio's grace, the same).
_STOP_SECONDS = 5

# The method numbers of serving/grpc_front/main.go, with the request message each carries.
PREDICT, METADATA, CLASSIFY, REGRESS, STATUS = 1, 2, 3, 4, 5
_REQUESTS: dict[int, Any] = {
    PREDICT: predict_pb2.PredictRequest,
    METADATA: get_model_metadata_pb2.GetModelMetadataRequest,
    CLASSIFY: classification_pb2.ClassificationRequest,
    REGRESS: regression_pb2.RegressionRequest,
    STATUS: get_model_status_pb2.GetModelStatusRequest,
}


def front_end_binary() -> Path | None:
    """The built ``taxi-grpc-front`` beside this Python (the venv's ``bin/``), or None where it was not built."""
    binary = Path(sys.executable).parent / BINARY
    return binary if binary.is_file() else None


async def start_grpc_server(
    host: str, port: int, repository: ModelRepository, batcher: Batcher, max_message_bytes: int
) -> grpc_api.GrpcServer:
    """Serves TF Serving's gRPC services on ``host:port``; a UserError if the port cannot be used.

    The transport is ``taxi-grpc-front`` where ``make`` built it, else ``grpc.aio`` in this process
    (``grpc_api.start_in_process``): the same answers, the first at about a third less cost per call.

    Args:
        host: the address, as for REST (loopback by default).
        port: TF Serving's 8500 by default.
        repository: the versions, shared with REST.
        batcher: the TensorFlow calls, shared with REST.
        max_message_bytes: the largest request message taken (the REST body limit); larger ones get
            RESOURCE_EXHAUSTED from gRPC itself.
    """
    binary = front_end_binary()
    if binary is not None:
        return await start_front_end(binary, host, port, repository, batcher, max_message_bytes)
    return await grpc_api.start_in_process(host, port, repository, batcher, max_message_bytes)


class FrontEnd:
    """A running ``taxi-grpc-front`` and the socket it calls this process on."""

    def __init__(self, process: asyncio.subprocess.Process, bridge: asyncio.Server, folder: str):
        self._process = process
        self._bridge = bridge
        self._folder = folder

    async def stop(self) -> None:
        """SIGTERM: the program answers the calls in flight (their answers still come through the socket), then
        ends; killed if it takes longer than ``_STOP_SECONDS``."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended by itself (Ctrl-C reaches it too)
                self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), _STOP_SECONDS)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._bridge.close()
        await self._bridge.wait_closed()
        shutil.rmtree(self._folder, ignore_errors=True)


async def start_front_end(
    binary: Path, host: str, port: int, repository: ModelRepository, batcher: Batcher, max_message_bytes: int
) -> FrontEnd:
    """Opens the socket, starts the program on ``host:port`` and returns once it serves; a UserError if it cannot
    listen there (the port taken, say), with the program's one line."""
    folder = tempfile.mkdtemp(prefix="taxi-grpc-")
    socket_path = str(Path(folder) / "bridge.sock")
    loop = asyncio.get_running_loop()
    bridge = await loop.create_unix_server(lambda: _Bridge(repository, batcher), path=socket_path)
    address = grpc_api.grpc_address(host, port)
    command = [str(binary), "-listen", address, "-bridge", socket_path, "-max-message-bytes", str(max_message_bytes)]
    # The program's own messages (grpc-go logs errors only) go to a file: a pipe nobody reads could fill up.
    with open(Path(folder) / "front.log", "wb") as errors:
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, stderr=errors)
    front_end = FrontEnd(process, bridge, folder)
    assert process.stdout is not None
    try:
        ready = await asyncio.wait_for(process.stdout.readline(), _START_SECONDS)
    except TimeoutError:
        ready = b""
    if ready.strip() != b"ready":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), _STOP_SECONDS)  # it writes its line, then exits
        said = (Path(folder) / "front.log").read_text(errors="replace").strip()
        await front_end.stop()
        reason = said.splitlines()[-1].removeprefix("error: ") if said else f"{BINARY} did not start"
        raise UserError(f"{reason} (pick another --grpc-port)")
    log.info("gRPC (TF Serving's PredictionService and ModelService, %s) on %s", BINARY, address)
    return front_end


class _Bridge(asyncio.Protocol):
    """One connection from the program: reads calls, answers each when it is done."""

    def __init__(self, repository: ModelRepository, batcher: Batcher):
        self._repository = repository
        self._batcher = batcher
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._answers: list[bytes] = []  # written together at the end of the event loop's turn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= _HEADER.size:
            length, call_id, method = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            self._call(call_id, method, payload)

    def _call(self, call_id: int, method: int, payload: bytes) -> None:
        """Answers at once what needs no TensorFlow; a Predict is checked here, in the turn that read it, and joins
        the batcher's queue before the next frame is read, so that calls read together share a TensorFlow call."""
        try:
            request = _REQUESTS[method].FromString(payload)
            if method == PREDICT:
                prepared, encode = grpc_api.prepare_predict(self._repository, request, serialized=True)
                asyncio.ensure_future(self._predict(call_id, prepared, encode))
                return
            if method == METADATA:
                self._answer(call_id, grpc_api.model_metadata(self._repository, request).SerializeToString())
            elif method == STATUS:
                self._answer(call_id, grpc_api.model_status(self._repository, request).SerializeToString())
            else:
                verb = "classify" if method == CLASSIFY else "regress"
                self._refuse(call_id, grpc_api.refusal(self._repository, request, verb))
        except DecodeError:
            self._send(call_id, grpc.StatusCode.INTERNAL, b"Exception deserializing request!")
        except Exception as error:  # noqa: BLE001 - each failure becomes its call's status
            self._refuse(call_id, error)

    async def _predict(self, call_id: int, prepared: Any, encode: Callable[..., bytes]) -> None:
        try:
            self._answer(call_id, await self._batcher.predict(prepared, encode))
        except Exception as error:  # noqa: BLE001 - as in _call
            self._refuse(call_id, error)

    def _answer(self, call_id: int, response: bytes) -> None:
        self._send(call_id, grpc.StatusCode.OK, response)

    def _refuse(self, call_id: int, error: Exception) -> None:
        code, message = grpc_api.status_of(error)
        self._send(call_id, code, message.encode())

    def _send(self, call_id: int, code: grpc.StatusCode, body: bytes) -> None:
        """Queues an answer; the answers of one turn (a shared TensorFlow call's, say) go in one write."""
        if not self._answers:
            asyncio.get_running_loop().call_soon(self._write)
        self._answers.extend((_HEADER.pack(len(body), call_id, code.value[0]), body))

    def _write(self) -> None:
        answers, self._answers = self._answers, []
        if self._transport is not None:  # else the program went away meanwhile: nobody to answer
            self._transport.write(b"".join(answers))
