"""The HTTP side of ``taxi-pipeline serve``: TF Serving's REST API (``/v1/models/...``) on Starlette and uvicorn.

On a small machine the cost of a prediction is mostly fixed per request and per TensorFlow call, and all of it
but TensorFlow's own arithmetic holds the GIL, so the hot path is kept short:

- ``POST ...:predict`` is answered by ``ServingApp`` directly, not routed through Starlette; status, metadata and
  every other path go to a Starlette app.
- A small body is decoded and checked on the event loop (tens of microseconds, less than a trip to a thread and
  back); a large one in the thread pool, so that it never stalls the others.
- Checked requests wait in ``serving.batching``, which runs concurrent requests of the same loaded
  signature as one TensorFlow call in the thread pool (TensorFlow releases the GIL while it computes) and encodes
  each request's answer there.

Every error is ``{"error": "..."}`` with a 4xx status, as TF Serving answers, and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from serving.batching import Batcher
from serving.formats import (
    DEFAULT_SIGNATURE,
    Prepared,
    RequestError,
    json_answer,
    parse_json,
    prepare,
    refuse_classify_or_regress,
)
from serving.repository import LoadedVersion, ModelRepository
from serving.settings import ServerSettings

log = logging.getLogger(__name__)

# The answer names the version that computed it; TF Serving's body has no such field, so it goes in a header.
VERSION_HEADER = "X-Model-Version"
# The status answer's version labels (``stable=<version>,canary=<version>``): TF Serving's status body has no field
# for them, and a client that parses it strictly must not meet an unknown one.
LABELS_HEADER = "X-Version-Labels"
# Bodies up to this size are decoded and checked on the event loop: that takes tens of microseconds, less than
# handing them to a thread and back. Larger ones go to the thread pool, so a big request never stalls the others.
# Not a setting: it trades two costs of this code, not anything a user chooses.
INLINE_BODY_BYTES = 16 * 1024


def create_app(repository: ModelRepository, settings: ServerSettings | None = None) -> ServingApp:
    """The application; its lifespan starts and stops the repository's poller and the inference thread pool.

    Args:
        repository: the versions to serve; its poller runs while the app does.
        settings: the body limit, the worker threads, the batching of concurrent requests into shared
            TensorFlow calls (``serving.batching``) and the gRPC port (``serving.grpc_api``, started and stopped
            with the app on its event loop; 0: none); the defaults when None.

    Returns:
        The ASGI app; its ``batcher.stats`` tell what the batching did.
    """
    settings = settings or ServerSettings()
    executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="predict")
    batcher = Batcher(executor, max_batch_rows=settings.max_batch_rows, max_wait_s=settings.batch_wait_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        grpc_server = None
        if settings.grpc_port:
            # Imported here: the gRPC stack loads only for a server that serves it.
            from serving.grpc_bridge import start_grpc_server

            grpc_server = await start_grpc_server(
                settings.host, settings.grpc_port, repository, batcher, settings.max_body_bytes
            )
        repository.start_polling()
        try:
            yield
        finally:
            if grpc_server is not None:  # first, so its requests in flight still find the batcher's threads
                await grpc_server.stop()
            repository.stop()
            executor.shutdown(wait=False, cancel_futures=True)
            stats = batcher.stats
            if stats.requests:
                log.info(
                    "answered %d predict requests with %d TensorFlow calls (at most %d requests in one)",
                    stats.requests,
                    stats.calls,
                    stats.largest_batch,
                )

    async def status(request: Request) -> JSONResponse:
        name, version = _model_and_version(request.path_params, repository)
        labels = ",".join(f"{label}={number}" for label, number in repository.labels().items())
        return JSONResponse(repository.status(name, version), headers={LABELS_HEADER: labels})

    async def metadata(request: Request) -> JSONResponse:
        name, version = _model_and_version(request.path_params, repository)
        chosen = repository.choose(name, repository.newest() if version is None else version)
        return JSONResponse(_metadata(chosen, name))

    routes = [
        Route("/v1/models/{name}", status),
        Route("/v1/models/{name}/versions/{version}", status),
        Route("/v1/models/{name}/labels/{label}", status),
        Route("/v1/models/{name}/metadata", metadata),
        Route("/v1/models/{name}/versions/{version}/metadata", metadata),
        Route("/v1/models/{name}/labels/{label}/metadata", metadata),
    ]
    for route in routes:
        route.methods = {"GET"}  # Starlette adds HEAD to a GET route; HEAD answers 405, as it always did here
    fallback = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={RequestError: _request_error, HTTPException: _http_error, Exception: _internal_error},
    )
    return ServingApp(fallback, repository, batcher, executor, settings)


async def _request_error(_: Request, error: RequestError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=error.status)


async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
    """Starlette's own refusals (404 for an unknown path, 405 for a wrong method) in the same ``{"error": ...}``."""
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)


async def _internal_error(_: Request, error: Exception) -> JSONResponse:
    log.exception("request failed")
    return JSONResponse(_error_document(error), status_code=500)


# TF Serving's verb paths: /v1/models/{name}[/versions/{version}]:{predict|classify|regress}.
_VERB_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+))?"
    r":(?P<verb>predict|classify|regress)$"
)
_VERSION_HEADER_BYTES = VERSION_HEADER.lower().encode()


class ServingApp:
    """The ASGI app: ``POST ...:predict`` answered directly, everything else (status, metadata, 404s) by Starlette.

    Predictions are the hot path, and a framework's middleware and routing (FastAPI's, with its dependency solving)
    took about a fifth of a small request's time on the event loop. The few lines here do the same for this one
    route: the statuses, ``{"error": ...}`` bodies and headers that the Starlette app's handlers give.
    """

    def __init__(
        self,
        fallback: Starlette,
        repository: ModelRepository,
        batcher: Batcher,
        executor: ThreadPoolExecutor,
        settings: ServerSettings,
    ):
        self.fallback = fallback
        self.repository = repository
        self.batcher = batcher
        self.settings = settings
        self._executor = executor
        self._max_body_bytes = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _VERB_PATH.match(scope["path"])
            if match is not None:
                if scope["method"] != "POST":  # TF Serving: 400, as for any request it cannot route
                    error = f"Malformed request: {scope['method']} {scope['path']}"
                    await _respond(send, 400, _json({"error": error}))
                elif match["verb"] == "predict":
                    await self._predict(match, scope, receive, send)
                else:
                    await self._classify_or_regress(match, scope, receive, send)
                return
        await self.fallback(scope, receive, send)

    async def _classify_or_regress(self, match: re.Match[str], scope: Scope, receive: Receive, send: Send) -> None:
        """TF Serving's answer for this model: the version is resolved, then its signature refused (a 400)."""
        try:
            model = self.repository.choose(*_model_and_version(match.groupdict(), self.repository))
            document = parse_json(await _read_body(receive, scope["headers"], self._max_body_bytes))
            name = document.get("signature_name", DEFAULT_SIGNATURE) if isinstance(document, dict) else None
            raise refuse_classify_or_regress(model.signatures, match["verb"], name)
        except _DisconnectedError:
            return
        except RequestError as error:
            await _respond(send, error.status, _json({"error": str(error)}))

    async def _predict(self, match: re.Match[str], scope: Scope, receive: Receive, send: Send) -> None:
        try:
            model = self.repository.choose(*_model_and_version(match.groupdict(), self.repository))
            body = await _read_body(receive, scope["headers"], self._max_body_bytes)
            if len(body) <= INLINE_BODY_BYTES:
                prepared = _prepare(model, body)
            else:
                prepared = await asyncio.get_running_loop().run_in_executor(self._executor, _prepare, model, body)
            answer = await self.batcher.predict(prepared, functools.partial(json_answer, prepared))
        except _DisconnectedError:
            return  # nobody left to answer
        except RequestError as error:
            await _respond(send, error.status, _json({"error": str(error)}))
        except Exception as error:  # a bug: answered with 500 and logged; the server goes on
            log.exception("request failed")
            await _respond(send, 500, _json(_error_document(error)))
        else:
            await _respond(send, 200, answer, [(_VERSION_HEADER_BYTES, str(model.version).encode())])


class _DisconnectedError(Exception):
    """The client closed the connection before its request body was complete."""


def _prepare(model: LoadedVersion, body: bytes) -> Prepared:
    """Decodes and checks one request: everything that can be the caller's fault, before it joins a batch."""
    return prepare(model.signatures, parse_json(body))


async def _read_body(receive: Receive, headers: list[tuple[bytes, bytes]], limit: int) -> bytes:
    """The body, or a 413 as soon as it is known to exceed ``limit`` (declared length or bytes received)."""
    for name, value in headers:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise RequestError(f"request body of {value.decode()} bytes exceeds the limit of {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(f"request body exceeds the limit of {limit} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """One complete response, with the headers Starlette's ``Response`` would give it."""
    raw = [*(headers or []), (b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _json(document: dict[str, Any]) -> bytes:
    """Encoded as Starlette's ``JSONResponse`` encodes, so an error reads the same from either path."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _error_document(error: Exception) -> dict[str, str]:
    return {"error": f"internal error: {type(error).__name__}: {error}"}


def _model_and_version(path_params: Mapping[str, str | None], repository: ModelRepository) -> tuple[str, int | None]:
    """The model a path names, and the version it names by number or label (a 400 if neither is valid), if any."""
    name, version, label = path_params["name"], path_params.get("version"), path_params.get("label")
    if label is not None:
        return name, repository.labelled(name, label)
    if version is not None and not version.isdigit():
        raise RequestError(f"model version must be a non-negative integer, got {version!r}")
    return name, None if version is None else int(version)


def _metadata(model: LoadedVersion, name: str) -> dict[str, Any]:
    """TF Serving's GetModelMetadata answer over REST: the saved SignatureDefs, printed as TF Serving prints them
    (proto field names, default values included), so clients can discover inputs, their types and tensor names."""
    signature_defs = json_format.MessageToDict(
        model.signature_defs, including_default_value_fields=True, preserving_proto_field_name=True
    )
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
        "metadata": {"signature_def": signature_defs},
    }
