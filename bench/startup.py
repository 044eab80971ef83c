"""Benchmark: how long the command line takes before it does anything, as whole processes.

- ``taxi-pipeline --help``: the command group and its options only (no config, no TensorFlow).
- the run path's imports: what ``taxi-pipeline run`` imports before the first component starts (the command,
  the config, the local runner, ``create_pipeline`` and LocalDagRunner), timed as ``python -c "import ..."``.
- the compile path's and the server's imports likewise.

Each figure is the median of ``--repeat`` processes (the first, with cold file caches, is run and discarded).

    .venv/bin/python bench/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
IMPORTS = {
    "run path": "import cli.run, runners.local, pipeline.pipeline, tfx.orchestration.local.local_dag_runner",
    "compile path": "import cli.deploy, runners.kubeflow, pipeline.pipeline, "
    "tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner",
    "serve path": "import cli.serve, serving.app, serving.repository, serving.server",
}


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env, cwd=REPO)
    return time.perf_counter() - start


def median_seconds(command: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float, float]:
    timed(command, env)  # warm the file cache
    samples = [timed(command, env) for _ in range(repeat)]
    return statistics.median(samples), min(samples), max(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    # As the command line sets them before TensorFlow loads (tfx_compat.prepare_tensorflow).
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "1"}
    print(f"load average {os.getloadavg()[0]:.2f}; median of {args.repeat} processes (min-max)")
    rows = {"taxi-pipeline --help": [str(VENV_BIN / "taxi-pipeline"), "--help"]}
    rows |= {f"{name} imports": [sys.executable, "-c", code] for name, code in IMPORTS.items()}
    for name, command in rows.items():
        median, low, high = median_seconds(command, args.repeat, env)
        print(f"  {name:24} {median:6.2f} s  ({low:.2f}-{high:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
