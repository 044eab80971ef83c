"""What the serving tests share: rows as requests, the SavedModel's own answers, versions pushed by hand, servers.

The fixtures that give these a model (the version the session's small run pushed) are in ``e2e/conftest.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models import features
from serving.app import ServingApp, create_app
from serving.repository import ModelRepository
from serving.settings import ServerSettings
from serving.versions import SAVED_MODEL_FILE

MODEL = "taxi"


def typed_instance(row: dict[str, str], fill_missing: bool) -> dict[str, Any]:
    """A CSV row as a JSON instance: numbers as numbers, empty cells as null (or 0 / "" when ``fill_missing``)."""
    instance: dict[str, Any] = {}
    for name in features.FEATURES:
        value = features.parse_cell(name, row[name])
        if value is None and fill_missing:
            value = "" if name in features.STRING_COLUMNS else 0
        instance[name] = value
    return instance


def own_output(saved_model: Any, instances: list[dict[str, Any]]) -> np.ndarray:
    """What the SavedModel's ``serving_default`` itself gives for ``instances``, called in this process."""
    signature = saved_model.signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    tensors = {
        name: tf.constant(np.array([row[name] for row in instances], dtype=spec.dtype.as_numpy_dtype))
        for name, spec in specs.items()
    }
    return signature(**tensors)["probabilities"].numpy()


def push_copy(source: Path, version: int) -> Path:
    """Copies a version as the Pusher writes one: everything else first, ``saved_model.pb`` last."""
    target = source.parent / str(version)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(SAVED_MODEL_FILE))
    shutil.copy2(source / SAVED_MODEL_FILE, target / SAVED_MODEL_FILE)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serving_app(repository: ModelRepository, **settings: Any) -> ServingApp:
    """The server's app with gRPC on a free port (TF Serving's 8500 may be taken where tests run); the port is
    ``grpc_target(app)``'s."""
    return create_app(repository, ServerSettings(grpc_port=free_port(), **settings))


def grpc_target(app: ServingApp) -> str:
    return f"127.0.0.1:{app.settings.grpc_port}"


# Answers a request once: (its status, the version that answered or "").
Call = Callable[[], tuple[str, str]]


@dataclasses.dataclass
class SwapUnderLoad:
    """What ``swap_under_load`` saw: every answer (time, status, version), the old version and the switch time."""

    outcomes: list[tuple[float, str, str]]
    first: int
    switched: float

    def assert_no_request_failed(self, ok: str) -> None:
        """Every answer ``ok``, both versions answered, and only the new one from half a second after the switch."""
        assert len(self.outcomes) > 20
        assert {status for _, status, _ in self.outcomes} == {ok}
        assert {version for _, _, version in self.outcomes} == {str(self.first), str(self.first + 1)}
        assert all(version == str(self.first + 1) for at, _, version in self.outcomes if at > self.switched + 0.5)


def swap_under_load(
    repository: ModelRepository, open_caller: Callable[[], contextlib.AbstractContextManager[Call]]
) -> SwapUnderLoad:
    """Four clients call the server without pause while a copy of its one version is pushed as the next version.

    Args:
        repository: the served repository, polling its directory, holding one version.
        open_caller: opens one client (a connection, a channel) and gives its ``Call``; one per client thread.
    """
    (first,) = repository.snapshot.newest_first
    outcomes: list[tuple[float, str, str]] = []
    stop = threading.Event()

    def stream() -> None:
        with open_caller() as call:
            while not stop.is_set():
                outcomes.append((time.monotonic(), *call()))

    streams = [threading.Thread(target=stream) for _ in range(4)]
    try:
        for thread in streams:
            thread.start()
        time.sleep(1.0)
        push_copy(repository.base_dir / str(first), first + 1)
        deadline = time.monotonic() + 60
        while repository.snapshot.newest_first != [first + 1]:
            assert time.monotonic() < deadline, "the new version was not picked up"
            time.sleep(0.1)
        switched = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in streams:
            thread.join()
    return SwapUnderLoad(outcomes, first, switched)
