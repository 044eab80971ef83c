"""The HTTP side of ``taxi-pipeline serve``: TF Serving's REST API (``/v1/models/...``) on FastAPI and uvicorn.

Handlers run on the event loop only for what is cheap (routing, reading the body, picking a version); JSON
decoding, tensor conversion, the TensorFlow call and JSON encoding run in a bounded thread pool, so requests
overlap (TensorFlow releases the GIL while it computes) and a slow request never stalls the others. Every error
is ``{"error": "..."}`` with a 4xx status, as TF Serving answers, and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from runners.serving_models import LoadedVersion, ModelRepository
from runners.serving_predict import RequestError, dumps, parse_json, predict

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
# The answer names the version that computed it; TF Serving's body has no such field, so it goes in a header.
VERSION_HEADER = "X-Model-Version"


def create_app(repository: ModelRepository, *, max_body_bytes: int = MAX_BODY_BYTES, workers: int = 4) -> FastAPI:
    """The application; its lifespan starts and stops the repository's poller and the inference thread pool."""
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        repository.start_polling()
        try:
            yield
        finally:
            repository.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="taxi model server", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestError)
    async def request_error(_: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, status_code=500)

    @app.get("/v1/models/{name}")
    async def model_status(name: str) -> dict[str, Any]:
        return repository.status(name)

    @app.get("/v1/models/{name}/versions/{version}")
    async def version_status(name: str, version: str) -> dict[str, Any]:
        return repository.status(name, _version(version))

    @app.get("/v1/models/{name}/metadata")
    async def model_metadata(name: str) -> dict[str, Any]:
        return _metadata(repository.choose(name, _newest(repository)), name)

    @app.get("/v1/models/{name}/versions/{version}/metadata")
    async def version_metadata(name: str, version: str) -> dict[str, Any]:
        return _metadata(repository.choose(name, _version(version)), name)

    @app.post("/v1/models/{name}:predict")
    async def predict_latest(name: str, request: Request) -> Response:
        return await _predict(request, repository.choose(name))

    @app.post("/v1/models/{name}/versions/{version}:predict")
    async def predict_version(name: str, version: str, request: Request) -> Response:
        return await _predict(request, repository.choose(name, _version(version)))

    async def _predict(request: Request, model: LoadedVersion) -> Response:
        body = await _read_body(request, max_body_bytes)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(executor, _answer, model, body)
        return Response(answer, media_type="application/json", headers={VERSION_HEADER: str(model.version)})

    return app


def _answer(model: LoadedVersion, body: bytes) -> bytes:
    """Everything CPU-bound of one prediction, run in the thread pool."""
    return dumps(predict(model.signatures, parse_json(body)))


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 as soon as it is known to exceed ``limit`` (declared length or bytes received)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body of {declared} bytes exceeds the limit of {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"request body exceeds the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _version(text: str) -> int:
    if not text.isdigit():
        raise RequestError(f"model version must be a non-negative integer, got {text!r}")
    return int(text)


def _newest(repository: ModelRepository) -> int | None:
    order = repository.snapshot.newest_first
    return order[0] if order else None


_DTYPES = {
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int64": "DT_INT64",
    "int32": "DT_INT32",
    "string": "DT_STRING",
}


def _metadata(model: LoadedVersion, name: str) -> dict[str, Any]:
    """TF Serving's GetModelMetadata answer (signature_def), so clients can discover inputs and their types."""

    def tensor(key: str, spec: Any) -> dict[str, Any]:
        dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape.as_list()]
        return {"dtype": _DTYPES.get(spec.dtype.name, spec.dtype.name), "tensor_shape": {"dim": dims}, "name": key}

    defs = {}
    for signature_name, signature in model.signatures.items():
        inputs = signature.function.structured_input_signature[1]
        outputs = signature.function.structured_outputs
        defs[signature_name] = {
            "inputs": {key: tensor(key, spec) for key, spec in inputs.items()},
            "outputs": {key: tensor(key, value) for key, value in outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
        "metadata": {"signature_def": {"signature_def": defs}},
    }


@dataclasses.dataclass
class BackgroundServer:
    """A uvicorn server running in a thread of this process (tests, benchmarks); ``stop()`` ends it."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def make_config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    """uvicorn settings shared by the command line and the tests: no per-request access log (it costs ~10% here)."""
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning", timeout_graceful_shutdown=5)


def serve_in_background(app: FastAPI, host: str = "127.0.0.1") -> BackgroundServer:
    """Starts ``app`` on a free port of ``host`` and returns once it accepts connections."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (see runners/serving.py).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(make_config(app, host, port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn")
    thread.start()
    for _ in range(600):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    if not server.started:
        raise RuntimeError("the server did not start")
    return BackgroundServer(server=server, thread=thread, url=f"http://{host}:{port}")
