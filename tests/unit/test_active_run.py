"""The home's run lock: one run at a time per home, a refusal that names the running one, and no stale lock after
a crash (the kernel drops a ``flock`` with its process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from runs import active


def test_a_second_run_on_the_same_home_is_refused_naming_the_first(tmp_path):
    with active.hold(tmp_path, "2026-12-01T10:00:00", tmp_path / "logs" / "run.log") as lock:
        lock.update(nodes=(("CsvExampleGen", ()), ("StatisticsGen", ("CsvExampleGen",))))
        running = active.current(tmp_path)
        assert running is not None and running.pid == os.getpid() and running.run_id == "2026-12-01T10:00:00"
        assert running.nodes == (("CsvExampleGen", ()), ("StatisticsGen", ("CsvExampleGen",)))
        refusal = r"another run is in progress in .* \(run 2026-12-01T10:00:00"
        with pytest.raises(active.HomeBusyError, match=refusal), active.hold(tmp_path, "2026-12-01T10:05:00"):
            pass
    assert active.current(tmp_path) is None
    with active.hold(tmp_path, "2026-12-01T10:10:00"):  # free again once the first has ended
        assert active.current(tmp_path).run_id == "2026-12-01T10:10:00"


def test_a_killed_run_leaves_no_lock_behind(tmp_path):
    holder = (
        "import sys, time; from runs import active\n"
        "with active.hold(sys.argv[1], 'killed-run'):\n"
        "    print('held', flush=True); time.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    assert active.current(tmp_path).run_id == "killed-run"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while active.current(tmp_path) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert active.current(tmp_path) is None
    with active.hold(tmp_path, "next-run"):
        pass


def test_no_home_means_no_run(tmp_path):
    assert active.current(tmp_path / "never-used") is None
