"""``create_pipeline(config)``: the only place the taxi DAG is written.

Runners (``runners/``) pass this pipeline object to an orchestrator; they never add, remove or rewire names.
User code is referenced by dotted path so nothing is packaged or uploaded at run time: the ``models`` package is
installed in the venv locally and in the container image remotely.

    CsvExampleGen (or BigQueryExampleGen) -> StatisticsGen -> SchemaGen (inferred, for comparison)
                                   -> ExampleValidator (vs. curated schema from ImportSchemaGen)
                                      -> ValidationGate -> Transform
    for each candidate model in the config:
        Transform -> [Tuner_<name>] -> Trainer_<name>
        Resolver (latest pushed model) + Trainer_<name> -> Evaluator_<name>
    every candidate's model, evaluation and blessing -> ModelSelector -> Pusher
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message
from ml_metadata.proto import metadata_store_pb2

# Module paths rather than TFX's public ``tfx.v1``: importing any of ``tfx.v1`` imports ``tfx.v1.extensions`` and
# with it google-cloud-aiplatform, which made this import 10.9 s instead of 8.3 s here (docs/ARCHITECTURE.md).
from tfx.components import Evaluator, ExampleValidator, FileBasedExampleGen, SchemaGen, StatisticsGen, Transform
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.data_types import RuntimeParameter
from tfx.proto import example_gen_pb2, trainer_pb2
from tfx.types import Channel
from tfx.types.standard_artifacts import Model, ModelBlessing
from tfx.utils import proto_utils

from models.candidates import CANDIDATES
from pipeline import evaluator_udfs, names, platforms
from pipeline.components.curated_schema import CuratedSchemaGen
from pipeline.components.model_selection import CandidateChannels, ModelSelector
from pipeline.components.validation_gate import ValidationGate
from pipeline.config import PipelineConfig
from pipeline.evaluation import eval_config
from pipeline.fingerprints import code_fingerprint
from tfx_compat import csv_example_gen

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
TUNER_FN = "models.trainer.tuner_fn"
CODE_FINGERPRINT_KEY = "code_fingerprint"


def _runtime(config: PipelineConfig, name: str, value: str | Message) -> str | Message | RuntimeParameter:
    """``value``, or a string runtime parameter defaulting to it when ``pipeline.runtime_parameters`` is on.

    Compiled pipelines (Vertex, Kubeflow) then let each run change it without recompiling. TFX accepts only
    whole exec properties as runtime parameters, so protos (train args, eval config) become their JSON text,
    which the executors parse back. The values are the config's either way.
    """
    if not config.pipeline.runtime_parameters:
        return value
    default = value if isinstance(value, str) else proto_utils.proto_to_json(value)
    return RuntimeParameter(name=name, ptype=str, default=default)


def _custom_config(config: PipelineConfig, candidate: str, fingerprint: str) -> dict:
    """What ``run_fn``/``tuner_fn`` read from ``fn_args.custom_config`` (JSON-serialisable, recorded in MLMD):
    which candidate to build, its hyperparameters (its defaults with the config's overrides applied), and
    ``epochs`` (``training.epochs``: when above 0, the Trainer trains whole passes instead of ``train_steps``).

    ``code_fingerprint`` is read by nobody: it is there so that an edit of ``models/`` re-runs the step.
    """
    overrides = config.candidates.hyperparameters.get(candidate, {})
    return {
        "candidate": candidate,
        "hyperparameters": CANDIDATES[candidate].defaults.replace(overrides).to_dict(),
        "tuner": {"max_trials": config.tuner.max_trials, "seed": config.tuner.seed},
        "epochs": config.training.epochs,
        CODE_FINGERPRINT_KEY: fingerprint,
    }


def example_splits(config: PipelineConfig) -> example_gen_pb2.Output:
    """ExampleGen's train/eval split: rows go by a hash of each example, ``train_buckets`` to ``eval_buckets``."""
    return example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=config.data.train_buckets),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=config.data.eval_buckets),
            ]
        )
    )


def create_pipeline(
    config: PipelineConfig, metadata_connection: metadata_store_pb2.ConnectionConfig | None = None
) -> tfx_pipeline.Pipeline:
    """Builds the whole TFX pipeline from one config object.

    Args:
        config: the resolved configuration.
        metadata_connection: the ML Metadata store the runner uses (``pipeline.metadata.connection_config``);
            None on orchestrators that bring their own (Vertex, Kubeflow).
    """
    # In the parameters of every step that runs user code, so TFX's cache sees edits (pipeline/fingerprints.py).
    fingerprint = code_fingerprint()
    splits = example_splits(config)
    if config.data.bigquery_query:
        example_gen = platforms.bigquery_example_gen(config.data.bigquery_query, splits)
    else:
        # TFX's CsvExampleGen with an executor that drops the byte-order mark Excel puts before the first column's
        # name (tfx_compat/csv_example_gen.py); TFX 1.16's CsvExampleGen class takes no executor, its base does.
        example_gen = FileBasedExampleGen(
            input_base=_runtime(config, "data_root", config.data.root),
            custom_executor_spec=executor_spec.BeamExecutorSpec(csv_example_gen.Executor),
            output_config=splits,
        ).with_id(names.EXAMPLE_GEN)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    # The inferred schema is kept beside the curated one: diffing them shows what the data looks like today.
    inferred_schema = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    curated_schema = CuratedSchemaGen(schema_file=config.schema.path)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=curated_schema.outputs["schema"]
    )
    gate = ValidationGate(anomalies=example_validator.outputs["anomalies"], schema=curated_schema.outputs["schema"])
    validated_schema = gate.outputs["validated_schema"]

    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=validated_schema,
        preprocessing_fn=PREPROCESSING_FN,
        # StatisticsGen already describes the raw data; Transform's own pre/post statistics would compute
        # TFDV statistics twice more over the same rows.
        disable_statistics=True,
        # TFT's TF1 graph mode: the same analyzers and outputs, but ``preprocessing_fn`` is traced into a graph
        # a few times instead of into tf.functions ten times. Measured on the bundled data: 19.8 s -> 13.7 s.
        # The Trainer, the serving signatures and TFMA load either kind of Transform graph.
        force_tf_compat_v1=True,
        # The analyzer cache only pays off when fed back as ``analyzer_cache`` for new spans of the same data;
        # this pipeline reads one snapshot, so writing it was ~3 s of every Transform for nothing.
        disable_analyzer_cache=True,
        # No transformed examples: the Trainers and Tuners read ExampleGen's examples and apply the Transform
        # graph to each batch (models/trainer.py), as the exported model does at serving time. Writing them
        # was two thirds of Transform: encoding, gzip, and a second pass decoding every raw example (at 1.5M
        # trips 114-136 s with, 42-45 s without; docs/ARCHITECTURE.md).
        materialize=False,
        custom_config={CODE_FINGERPRINT_KEY: fingerprint},
    )
    training = platforms.training_classes(config)

    # The baseline every candidate is compared with: the model the last run pushed. Only the selector's
    # blessings count (its ``current_model_id`` is the pushed candidate's Trainer model), not every Evaluator's,
    # or a blessed candidate that lost would become the baseline. The channels are queries, not data edges.
    baseline_resolver = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=Model),
        model_blessing=Channel(type=ModelBlessing, producer_component_id=names.MODEL_SELECTOR, output_key="blessing"),
    ).with_id(names.BASELINE_RESOLVER)
    evaluation_settings = _runtime(config, "eval_config", eval_config(config))
    train_args = _runtime(config, "train_args", trainer_pb2.TrainArgs(num_steps=config.training.train_steps))
    eval_args = _runtime(config, "eval_args", trainer_pb2.EvalArgs(num_steps=config.training.eval_steps))

    per_candidate: list = []
    candidates: dict[str, CandidateChannels] = {}
    for name in config.candidates.names:
        custom_config = {**_custom_config(config, name, fingerprint), **training.settings(name)}
        tuner = None
        if config.tuner.enabled:
            tuner = training.tuner(
                tuner_fn=TUNER_FN,
                examples=example_gen.outputs["examples"],
                transform_graph=transform.outputs["transform_graph"],
                schema=validated_schema,
                train_args=trainer_pb2.TrainArgs(num_steps=config.tuner.train_steps),
                eval_args=trainer_pb2.EvalArgs(num_steps=config.tuner.eval_steps),
                custom_config=custom_config,
            ).with_id(names.tuner(name))
        trainer = training.trainer(
            run_fn=RUN_FN,
            examples=example_gen.outputs["examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=validated_schema,
            hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
            train_args=train_args,
            eval_args=eval_args,
            custom_config=custom_config,
        ).with_id(names.trainer(name))
        evaluator = Evaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            baseline_model=baseline_resolver.outputs["model"],
            schema=validated_schema,
            eval_config=evaluation_settings,
            # TFMA's extractors with each batch split by slice key rather than unbatched (the module says when).
            module_path=evaluator_udfs.__name__,
        ).with_id(names.evaluator(name))
        per_candidate += [*([tuner] if tuner else []), trainer, evaluator]
        candidates[name] = CandidateChannels(
            model=trainer.outputs["model"],
            evaluation=evaluator.outputs["evaluation"],
            blessing=evaluator.outputs["blessing"],
        )
    selector = ModelSelector(candidates=candidates, selection_metric=config.candidates.selection_metric).with_id(
        names.MODEL_SELECTOR
    )
    pusher = platforms.pusher(
        config, model=selector.outputs["model"], model_blessing=selector.outputs["blessing"]
    ).with_id(names.PUSHER)

    components = [
        example_gen,
        statistics_gen,
        inferred_schema,
        curated_schema,
        example_validator,
        gate,
        transform,
        baseline_resolver,
        *per_candidate,
        selector,
        pusher,
    ]
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline.name,
        pipeline_root=config.pipeline.root,
        components=components,
        enable_cache=config.pipeline.enable_cache,
        metadata_connection_config=metadata_connection,
        beam_pipeline_args=list(config.beam.args),
    )


def node_graph(components: Sequence[Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``(node id, upstream node ids)`` for a TFX pipeline's components, in the pipeline's order: what runners
    record on a run's context (``names.RUN_DAG``), since ML Metadata keeps no DAG, for the run explorer's graph."""
    return tuple((c.id, tuple(sorted(node.id for node in c.upstream_nodes))) for c in components)
