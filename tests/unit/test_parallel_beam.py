"""Which Beam steps of a local run get a worker process per core: only on inputs above ``beam.parallel_above_mb``
(off by default), and then StatisticsGen and Transform (the steps that read all of ExampleGen's examples and gain
from a second core), through TFX's per-component Beam args (the executor spec LocalDagRunner hands to each
component's Beam pipeline)."""

from __future__ import annotations

import shutil

import pytest

import tfx_compat
from pipeline.config import PROJECT_DIR, load_config
from runners.local import PARALLEL_BEAM_ARGS, parallel_beam_where_it_pays

tfx_compat.prepare_tensorflow()


@pytest.mark.parametrize(("threshold_mb", "parallel"), [(1, True), (100, False), (0, False)])
def test_only_big_inputs_run_the_heavy_beam_steps_on_a_worker_per_core(tmp_path, threshold_mb, parallel):
    shutil.copy(PROJECT_DIR / "data" / "taxi.csv", tmp_path / "taxi.csv")  # 1.9 MB
    overrides = [f"beam.parallel_above_mb={threshold_mb}", "candidates.names=linear,dnn"]
    from pipeline.pipeline import create_pipeline

    config = load_config("local", overrides, data_root=str(tmp_path))
    pipeline = create_pipeline(config)
    changed = parallel_beam_where_it_pays(config, pipeline.components)
    expected = ["StatisticsGen", "Transform"] if parallel else []
    assert sorted(changed) == sorted(expected)
    for component in pipeline.components:
        args = list(getattr(component.executor_spec, "beam_pipeline_args", []) or [])
        on_workers = args[-len(PARALLEL_BEAM_ARGS) :] == list(PARALLEL_BEAM_ARGS)
        assert on_workers == (component.id in expected), (component.id, args)
