"""The compiled Vertex AI / Kubeflow pipeline specs, checked against the local DAG (no golden files).

Both specs are compiled for real by ``taxi-pipeline compile`` (KubeflowV2DagRunner, offline) in this process, then
parsed into the KFP ``PipelineSpec`` proto and compared with ``create_pipeline`` for the local profile: the same
tasks with the same dependencies, the configured image on every step, and the runtime parameters with the
config's values as defaults. ``aiplatform.PipelineJob`` is then built from the Vertex spec with anonymous
credentials, which makes no network call.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cli import main as cli
from runners import kubeflow

IMAGE = "registry.example/taxi/taxi-pipeline:test"
RESOLVER_SUFFIXES = ("-model-resolver", "-model-blessing-resolver")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs")
    paths = {}
    for target in ("vertex", "kubeflow"):
        paths[target] = folder / f"{target}.json"
        code = cli.main(
            [
                "compile",
                "--runner",
                target,
                "--output",
                str(paths[target]),
                "--home",
                "gs://test-bucket/taxi",
                "--set",
                f"container.image={IMAGE}",
                "--set",
                "training.train_steps=321",
                "--set",
                "training.eval_steps=12",
            ]
        )
        assert code == 0
    return paths


def _spec_proto(document):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return json_format.ParseDict(kubeflow.pipeline_spec(document), pipeline_spec_pb2.PipelineSpec())


def _node_id(task_name: str) -> str:
    """KubeflowV2 splits a Resolver node into one task per input; both map back to the node."""
    for suffix in RESOLVER_SUFFIXES:
        if task_name.endswith(suffix):
            return task_name[: -len(suffix)]
    return task_name


def _local_dag() -> dict[str, set[str]]:
    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(load_config("local"))
    return {component.id: {node.id for node in component.upstream_nodes} for component in pipeline.components}


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_spec_has_the_local_dag_image_and_runtime_parameters(compiled, target):
    document = json.loads(compiled[target].read_text())
    spec = _spec_proto(document)
    assert spec.pipeline_info.name == "taxi"

    dag = {}
    for name, task in spec.root.dag.tasks.items():
        dag.setdefault(_node_id(name), set()).update(_node_id(upstream) for upstream in task.dependent_tasks)
    assert dag == _local_dag()

    executors = kubeflow.pipeline_spec(document)["deploymentSpec"]["executors"]
    containers = [executor["container"] for executor in executors.values() if "container" in executor]
    resolvers = [name for name in spec.root.dag.tasks if name.endswith(RESOLVER_SUFFIXES)]
    assert len(containers) == len(spec.root.dag.tasks) - len(resolvers)  # resolvers run in the backend itself
    assert {container["image"] for container in containers} == {IMAGE}

    parameters = spec.root.input_definitions.parameters
    assert set(parameters) == {"data_root", "train_args", "eval_args", "eval_config"}
    defaults = {name: parameter.default_value.string_value for name, parameter in parameters.items()}
    assert defaults["data_root"] == "gs://test-bucket/taxi/data"
    assert json.loads(defaults["train_args"]) == {"num_steps": 321}
    assert json.loads(defaults["eval_args"]) == {"num_steps": 12}
    assert "BinaryClassifierMetrics" in defaults["eval_config"]
    for candidate in ("wide_and_deep", "dnn", "linear"):
        trainer = spec.root.dag.tasks[f"Trainer_{candidate}"].inputs.parameters
        assert trainer["train_args"].component_input_parameter == "train_args"
        assert trainer["eval_args"].component_input_parameter == "eval_args"
        evaluator = spec.root.dag.tasks[f"Evaluator_{candidate}"].inputs.parameters
        assert evaluator["eval_config"].component_input_parameter == "eval_config"
        # The Evaluator in the image imports the batching extractors by this name (the package is installed).
        assert evaluator["module_path"].runtime_value.constant.string_value == "pipeline.evaluator_udfs"
    assert spec.root.dag.tasks["CsvExampleGen"].inputs.parameters["input_base"].component_input_parameter == (
        "data_root"
    )
    if target == "vertex":
        assert document["runtimeConfig"]["gcsOutputDirectory"] == "gs://test-bucket/taxi/pipeline_root"
        assert document["runtimeConfig"]["parameterValues"] == defaults


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_selector_takes_every_candidate_and_feeds_the_pusher(compiled, target):
    """The custom ModelSelector compiles to an ordinary container step: every candidate's model, evaluation and
    blessing go in, and the Pusher takes the selector's model and blessing, not any Trainer's."""
    spec = _spec_proto(json.loads(compiled[target].read_text()))
    tasks = spec.root.dag.tasks
    selector_inputs = {
        key: (artifact.task_output_artifact.producer_task, artifact.task_output_artifact.output_artifact_key)
        for key, artifact in tasks["ModelSelector"].inputs.artifacts.items()
    }
    expected = {}
    for candidate in ("wide_and_deep", "dnn", "linear"):
        expected[f"{candidate}_model"] = (f"Trainer_{candidate}", "model")
        expected[f"{candidate}_evaluation"] = (f"Evaluator_{candidate}", "evaluation")
        expected[f"{candidate}_blessing"] = (f"Evaluator_{candidate}", "blessing")
    assert selector_inputs == expected
    pusher_inputs = {
        key: (artifact.task_output_artifact.producer_task, artifact.task_output_artifact.output_artifact_key)
        for key, artifact in tasks["Pusher"].inputs.artifacts.items()
    }
    assert pusher_inputs == {"model": ("ModelSelector", "model"), "model_blessing": ("ModelSelector", "blessing")}
    parameters = tasks["ModelSelector"].inputs.parameters
    assert json.loads(parameters["candidates"].runtime_value.constant.string_value) == [
        "wide_and_deep",
        "dnn",
        "linear",
    ]
    assert parameters["selection_metric"].runtime_value.constant.string_value == "auc"


def test_pipeline_job_is_built_offline_with_changed_parameters(compiled):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    document = kubeflow.read_spec(compiled["vertex"])
    parameters = kubeflow.parse_parameters(
        document, ["train_steps=50", "min_auc=0.8", "data_root=gs://other-bucket/data"]
    )
    job = aiplatform.PipelineJob(
        display_name="taxi-test",
        template_path=str(compiled["vertex"]),
        parameter_values=parameters,
        project="test-project",
        location="europe-west4",
        credentials=AnonymousCredentials(),
    )
    values = dict(job._gca_resource.runtime_config.parameter_values)
    assert values["data_root"] == "gs://other-bucket/data"
    assert json.loads(values["train_args"]) == {"num_steps": 50}
    threshold = json.loads(values["eval_config"])["metrics_specs"][0]["metrics"][0]["per_slice_thresholds"][0]
    assert threshold["threshold"]["value_threshold"]["lower_bound"] == 0.8
    assert json.loads(values["eval_args"]) == {"num_steps": 12}  # the compiled default, unchanged
    assert job._gca_resource.pipeline_spec["deploymentSpec"]


def test_unknown_parameter_is_a_user_error(compiled):
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="not a runtime parameter"):
        kubeflow.parse_parameters(kubeflow.read_spec(compiled["kubeflow"]), ["epochs=3"])


def test_compiling_a_profile_with_local_metadata_is_one_line(capsys):
    assert cli.main(["compile", "--runner", "vertex", "--profile", "local"]) == 2
    assert capsys.readouterr().err.startswith("error: profile 'local' sets an ML Metadata connection")


def test_help_and_user_errors_load_no_tensorflow():
    code = (
        "import sys, contextlib, io; from cli import main as cli\n"
        "with contextlib.redirect_stdout(io.StringIO()): assert cli.main(['--help']) == 0\n"
        "assert cli.main(['submit', '--runner', 'kubeflow', '--spec', 'x.json']) == 2;"
        "assert cli.main(['compile', '--runner', 'vertex', '--profile', 'nope']) == 2;"
        "assert 'tensorflow' not in sys.modules and 'tfx' not in sys.modules, 'heavy import'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "error: no Kubeflow Pipelines host" in result.stderr


def test_vertex_training_runs_each_candidate_on_vertex_with_its_own_trials_folder():
    """With ``vertex.training`` on, every candidate's Trainer and Tuner is TFX's Vertex AI component, and the
    Tuners do not share a remote trials folder (KerasTuner would mix their trials)."""
    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    config = load_config(
        "vertex", ["tuner.enabled=true", "vertex.training=true", "vertex.project=p"], home="gs://test-bucket/taxi"
    )
    components = {component.id: component for component in create_pipeline(config).components}
    folders = set()
    for candidate in ("wide_and_deep", "dnn", "linear"):
        for kind in ("Trainer", "Tuner"):
            module = type(components[f"{kind}_{candidate}"]).__module__
            assert module.startswith("tfx.extensions.google_cloud_ai_platform."), module
        custom_config = components[f"Tuner_{candidate}"].exec_properties["custom_config"]
        custom_config = json.loads(custom_config) if isinstance(custom_config, str) else custom_config
        assert custom_config["candidate"] == candidate
        folders.add(custom_config["remote_trials_working_dir"])
    assert folders == {
        f"gs://test-bucket/taxi/pipeline_root/tuner_trials/{name}" for name in ("wide_and_deep", "dnn", "linear")
    }


def test_trainers_and_tuners_read_examplegens_examples_and_transform_writes_none():
    """Transform runs with ``materialize=False``: it writes only the Transform graph, and every Trainer and Tuner
    reads ExampleGen's examples with that graph (models/trainer.py applies it per batch)."""
    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    components = {c.id: c for c in create_pipeline(load_config("local", ["tuner.enabled=true"])).components}
    assert set(components["Transform"].outputs) == {"transform_graph"}
    readers = [name for name in components if name.startswith(("Trainer_", "Tuner_"))]
    assert len(readers) == 6
    for name in readers:
        assert components[name].inputs["examples"].producer_component_id == "CsvExampleGen", name
        assert components[name].inputs["transform_graph"].producer_component_id == "Transform", name


DATAFLOW_ARGS = [
    "--runner=DataflowRunner",
    "--project=p",
    "--region=us-central1",
    "--temp_location=gs://test-bucket/tmp",
    "--experiments=use_runner_v2",
]
# The nodes whose executors run Beam jobs (TFX's BaseBeamExecutor subclasses) and so need the Dataflow args.
BEAM_NODES = ("StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Evaluator_")


def _compiled_executors(tmp_path, *overrides: str) -> dict[str, list[str]]:
    """Compiles the vertex profile with ``overrides``; returns each node's executor container args."""
    output = tmp_path / "vertex.json"
    command = ["compile", "--runner", "vertex", "--output", str(output), "--home", "gs://test-bucket/taxi"]
    for override in (f"container.image={IMAGE}", *overrides):
        command += ["--set", override]
    assert cli.main(command) == 0
    spec = kubeflow.pipeline_spec(json.loads(output.read_text()))
    executors = spec["deploymentSpec"]["executors"]
    return {
        name.removesuffix("_executor"): executor["container"]["args"]
        for name, executor in executors.items()
        if "container" in executor  # the resolver's tasks are "importer"/"resolver" specs, not containers
    }


def test_the_dataflow_switch_reaches_every_beam_based_component(tmp_path):
    """The vertex profile's Dataflow switch (``beam.args``) is carried, in order, to every component that runs a
    Beam job, ExampleGen first among them."""
    executors = _compiled_executors(tmp_path, f"beam.args={json.dumps(DATAFLOW_ARGS)}")
    beam_nodes = [name for name in executors if name == "CsvExampleGen" or name.startswith(BEAM_NODES)]
    assert len(beam_nodes) == 1 + 4 + 3  # ExampleGen, four single components, an Evaluator per candidate
    for name in beam_nodes:
        args = executors[name]
        assert args[-len(DATAFLOW_ARGS) :] == DATAFLOW_ARGS, name


def test_the_bigquery_switch_makes_examplegen_bigquerys_with_the_same_splits(tmp_path):
    """``data.bigquery_query`` swaps CsvExampleGen for TFX's BigQueryExampleGen on the query, with the same
    train/eval split, and nothing downstream changes (StatisticsGen, Transform and the Evaluators read its
    examples)."""
    query = "SELECT * FROM `bigquery-public-data.chicago_taxi_trips.taxi_trips` LIMIT 10"
    executors = _compiled_executors(tmp_path, f"data.bigquery_query={query}", f"beam.args={json.dumps(DATAFLOW_ARGS)}")
    assert "CsvExampleGen" not in executors
    args = executors["BigQueryExampleGen"]
    assert "tfx.extensions.google_cloud_big_query.example_gen.executor.Executor" in args
    assert args[-len(DATAFLOW_ARGS) :] == DATAFLOW_ARGS

    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    for profile in ("vertex", "kubeflow", "composer"):
        overrides = [f"data.bigquery_query={query}", "metadata.mysql_host=", "metadata.sqlite_path="]
        pipeline = create_pipeline(load_config(profile, overrides, home="gs://test-bucket/taxi"))
        components = {component.id: component for component in pipeline.components}
        example_gen = components["BigQueryExampleGen"]
        [source] = json.loads(example_gen.exec_properties["input_config"])["splits"]
        assert source["pattern"] == query  # TFX keeps the query as the input split's pattern
        splits = json.loads(example_gen.exec_properties["output_config"])["split_config"]["splits"]
        assert [(split["name"], split["hash_buckets"]) for split in splits] == [("train", 4), ("eval", 1)]
        assert components["Transform"].inputs["examples"].producer_component_id == "BigQueryExampleGen"
