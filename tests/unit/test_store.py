"""The read-only store the run explorer uses: it waits out a SQLite lock a running pipeline holds, and never
writes."""

from __future__ import annotations

import sqlite3

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from runs import store
from runs.store import SharedReader


@pytest.fixture
def sqlite_store(tmp_path):
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(tmp_path / "metadata.sqlite")
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    writer = metadata_store.MetadataStore(connection)
    run_type = writer.put_context_type(metadata_store_pb2.ContextType(name="pipeline_run"))
    writer.put_contexts([metadata_store_pb2.Context(type_id=run_type, name="run-1")])
    return tmp_path / "metadata.sqlite", connection


def test_a_read_while_a_writer_holds_the_database_answers(sqlite_store):
    """A pipeline commits with the file locked; a page reading at that moment must not fail. (Measured here: ML
    Metadata's read-only SQLite connection reads through a writer's exclusive lock at once.)"""
    path, connection = sqlite_store
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert [c.name for c in SharedReader(connection).get_contexts_by_type("pipeline_run")] == ["run-1"]
    finally:
        holder.execute("COMMIT")
        holder.close()


def test_lock_errors_are_retried_and_other_errors_are_not(monkeypatch):
    """The retry itself, for connections that do report a busy database (a read-write SQLite, MySQL's locks)."""
    answers = [RuntimeError("database is locked"), RuntimeError("SQLITE_BUSY: database busy"), "rows"]

    def flaky():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert store._patiently(flaky) == "rows"

    def broken():
        raise RuntimeError("no such table: Context")

    with pytest.raises(RuntimeError, match="no such table"):
        store._patiently(broken)
    monkeypatch.setattr(store, "LOCK_PATIENCE_SECONDS", 0.2)
    with pytest.raises(RuntimeError, match="locked"):
        store._patiently(lambda: (_ for _ in ()).throw(RuntimeError("database is locked")))


def test_the_reader_cannot_write(sqlite_store):
    _, connection = sqlite_store
    reader = SharedReader(connection)
    run_type = reader.get_context_type("pipeline_run")
    with pytest.raises(Exception, match="(?i)read.?only|readonly"):
        reader.put_contexts([metadata_store_pb2.Context(type_id=run_type.id, name="run-2")])
