"""The one small real pipeline run that several end-to-end modules build on, made once per test session.

A 2,000-row slice of the bundled data, two small candidate models and few training steps: real TFX components,
in-process Beam and a SQLite ML Metadata store, about half a minute. ``test_local_runs.py`` continues a chain of
runs in its home; ``test_serving.py`` serves the version this run pushed from a home of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
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
