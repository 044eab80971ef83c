"""The ML Metadata store a config names, as the connection proto TFX and ML Metadata take.

Runners pass it to ``create_pipeline`` (as TFX's templates do) and the reading layer opens the same store
read-only: MySQL when ``metadata.mysql_host`` is set (Composer, Cloud SQL), else the SQLite file (local), else
None for orchestrators that bring their own (Vertex, Kubeflow).
"""

from __future__ import annotations

import os

from ml_metadata.proto import metadata_store_pb2

from pipeline.config import PipelineConfig


def connection_config(config: PipelineConfig) -> metadata_store_pb2.ConnectionConfig | None:
    """The ``[metadata]`` store; the MySQL password is read from the environment variable the config names, so it
    never sits in a profile."""
    settings = config.metadata
    connection = metadata_store_pb2.ConnectionConfig()
    if settings.mysql_host:
        connection.mysql.host = settings.mysql_host
        connection.mysql.port = settings.mysql_port
        connection.mysql.database = settings.mysql_database
        connection.mysql.user = settings.mysql_user
        connection.mysql.password = os.environ.get(settings.mysql_password_env, "")
        return connection
    if settings.sqlite_path:
        connection.sqlite.filename_uri = settings.sqlite_path
        connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return connection
    return None
