"""The one small real pipeline run that several end-to-end modules build on, made once per test session.

A 2,000-row slice of the bundled data, two small candidate models and few training steps: real TFX components,
in-process Beam and a SQLite ML Metadata store, about half a minute. ``test_local_runs.py`` continues a chain of
runs in its home; ``test_serving.py`` and ``test_serving_grpc.py`` serve the version this run pushed from a home of
their own (the fixtures below).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from served_model import MODEL, typed_instance
from small_run import SLICE_ROWS, SMALL_RUN
from taxi_rows import read_rows, write_csv

from pipeline.config import load_config
from runners.local import LocalRun, run_local


@pytest.fixture(scope="session")
def data_slice(tmp_path_factory) -> str:
    header, rows = read_rows(SLICE_ROWS)
    return write_csv(tmp_path_factory.mktemp("data") / "slice", header, rows)


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def first_run(shared_home, data_slice) -> LocalRun:
    """The first run in ``shared_home``: every component executes, and the best candidate is pushed."""
    return run_local(load_config("local", SMALL_RUN, home=str(shared_home), data_root=data_slice))


@pytest.fixture(scope="module")
def serving_home(first_run, tmp_path_factory) -> Path:
    """A pipeline home whose serving directory holds one version: the one the session's first run pushed."""
    assert first_run.succeeded and first_run.report.pushed_path, first_run.error
    pushed = Path(first_run.report.pushed_path)
    home = tmp_path_factory.mktemp("serving_home")
    shutil.copytree(pushed, home / "serving" / MODEL / pushed.name)
    return home


@pytest.fixture(scope="module")
def pushed(serving_home) -> Path:
    """The one version folder in ``serving_home``."""
    (version,) = [path for path in (serving_home / "serving" / MODEL).iterdir() if path.name.isdigit()]
    return version


@pytest.fixture(scope="module")
def saved_model(pushed):
    return tf.saved_model.load(str(pushed))


@pytest.fixture(scope="module")
def instances() -> list[dict[str, Any]]:
    """16 rows of the bundled data as JSON instances, empty cells filled (``serving_default`` takes dense values)."""
    return [typed_instance(row, fill_missing=True) for row in read_rows(16)[1]]
