"""Opening the ML Metadata store a config names, read-only unless the caller writes on purpose."""

from __future__ import annotations

from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2


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
