"""Runs TFX's own Chicago taxi example (native Keras) with LocalDagRunner: the peer ``local_run.py`` times.

The example module's ``__main__`` uses BeamDagRunner, multi-process Beam and paths under ``~/taxi``; to compare
like with like we call its ``_create_pipeline`` instead, with every path under one work folder, in-process Beam
(``beam_pipeline_args=[]``: any non-empty Beam args make TFX build an sdist of the user module for each Beam
step) and LocalDagRunner, as our own ``taxi-pipeline run`` does.

Layout under ``WORK`` (the benchmark copies ``data/taxi.csv`` to ``WORK/data/taxi.csv`` before the first run)::

    data/taxi.csv                   the only file ExampleGen reads (it ingests every file in the folder)
    taxi_utils_native_keras.py      copy of the installed module file (Transform and Trainer user code)
    pipeline_root/                  artifacts
    serving_model/<version>/        what the Pusher pushed
    metadata.sqlite                 ML Metadata

Run it twice on the same ``WORK`` for the cached re-run. Needs ``TF_USE_LEGACY_KERAS=1`` (TFX 1.16 needs Keras 2)
and pip in the venv (the ``module_file`` path pip-installs a wheel of the user module at run time).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

PIPELINE_NAME = "chicago_taxi_native_keras"
MODULE_FILE_NAME = "taxi_utils_native_keras.py"


def main(argv: list[str] | None = None) -> int:
    """Builds the example pipeline with paths under ``--work`` and runs it to the end in this process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path, help="work folder (see the module docstring)")
    args = parser.parse_args(argv)
    work: Path = args.work.resolve()

    data_root = work / "data"
    if not any(data_root.glob("*.csv")):
        print(f"error: no CSV under {data_root}", file=sys.stderr)
        return 2

    from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as example
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    module_file = work / MODULE_FILE_NAME
    if not module_file.exists():
        # Copied once: the second (cached) run must see the very same file at the same path.
        shutil.copyfile(Path(example.__file__).with_name(MODULE_FILE_NAME), module_file)

    # A private name: the example exposes no public builder of its pipeline.
    pipeline = example._create_pipeline(
        pipeline_name=PIPELINE_NAME,
        pipeline_root=str(work / "pipeline_root"),
        data_root=str(data_root),
        module_file=str(module_file),
        serving_model_dir=str(work / "serving_model"),
        metadata_path=str(work / "metadata.sqlite"),
        beam_pipeline_args=[],
    )
    LocalDagRunner().run(pipeline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
