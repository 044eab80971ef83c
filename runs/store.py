"""Opening the ML Metadata store a config names: read-only unless the caller writes on purpose, and patient with
a SQLite file that a running pipeline is writing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata
from pipeline.config import PipelineConfig
from pipeline.errors import UserError

# How long a reader waits out a SQLite lock held by a writing pipeline, in all.
LOCK_PATIENCE_SECONDS = 10.0


def open_store(
    connection: metadata_store_pb2.ConnectionConfig, *, read_only: bool = True
) -> metadata_store.MetadataStore:
    """A store on ``connection``; a SQLite file is opened read-only (never created or migrated) unless
    ``read_only`` is False."""
    connection = metadata_store_pb2.ConnectionConfig.FromString(connection.SerializeToString())
    if read_only and connection.HasField("sqlite"):
        connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


def open_sqlite(path: str | Path) -> metadata_store.MetadataStore:
    """An existing SQLite store, read-only."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(path)
    return open_store(connection)


def reader_for(config: PipelineConfig) -> SharedReader:
    """A read-only store on ``config``'s ``[metadata]``, for a server's threads (the run explorer).

    A UserError when the config names no store, or its SQLite file does not exist yet (no run so far).
    """
    connection = metadata.connection_config(config)
    if connection is None:
        raise UserError(f"profile '{config.profile}' names no ML Metadata store (its orchestrator keeps its own)")
    if connection.HasField("sqlite") and not Path(connection.sqlite.filename_uri).is_file():
        raise UserError(
            f"no runs yet in {config.home}: {connection.sqlite.filename_uri} does not exist "
            f"(start one with `taxi-pipeline run --home {config.home}`)"
        )
    return SharedReader(connection)


class SharedReader:
    """A read-only ML Metadata store usable from many threads: one connection per thread, and every call retried
    while SQLite reports the database locked or busy (a running pipeline commits), for ``LOCK_PATIENCE_SECONDS``.

    Attribute access returns the store's methods so wrapped: ``reader.get_contexts(...)``.
    """

    def __init__(self, connection: metadata_store_pb2.ConnectionConfig):
        self._connection = connection
        self._local = threading.local()

    def _store(self) -> metadata_store.MetadataStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = _patiently(lambda: open_store(self._connection))
        return store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store(), name)
        if not callable(method):
            return method
        return lambda *args, **kwargs: _patiently(lambda: method(*args, **kwargs))


def _patiently(call: Callable[[], Any]) -> Any:
    """``call()``, again after a short pause while SQLite says the database is locked or busy."""
    deadline = time.monotonic() + LOCK_PATIENCE_SECONDS
    pause = 0.02
    while True:
        try:
            return call()
        except (errors.StatusError, RuntimeError) as error:
            text = str(error).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
