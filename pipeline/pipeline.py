"""``create_pipeline(config)``: the only place the taxi DAG is written.

Runners (``runners/``) pass this pipeline object to an orchestrator; they never add, remove or rewire nodes.
User code is referenced by dotted path so nothing is packaged or uploaded at run time: the ``models`` package is
installed in the venv locally and in the container image remotely.

    CsvExampleGen -> StatisticsGen -> SchemaGen (inferred, for comparison)
                                   -> ExampleValidator (vs. curated schema from ImportSchemaGen)
                                      -> ValidationGate -> Transform -> [Tuner] -> Trainer
    Resolver (latest blessed model) + Trainer -> Evaluator -> Pusher
"""

from __future__ import annotations

import tensorflow_model_analysis as tfma
from tfx.components import (
    CsvExampleGen,
    Evaluator,
    ExampleValidator,
    Pusher,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
    Tuner,
)
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2
from tfx.types import Channel
from tfx.types.standard_artifacts import Model, ModelBlessing

from models import features
from pipeline.config import PipelineConfig
from pipeline.validation_gate import ValidationGate

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
TUNER_FN = "models.trainer.tuner_fn"


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA settings: the metrics reported, the slices, and the thresholds a model must pass to be blessed."""
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.evaluation.min_auc}),
        # Ignored on the first run, when there is no blessed baseline yet.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.evaluation.max_auc_regression},
        ),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=features.LABEL,
                # The label is computed by Transform, so TFMA reads it from the model's transform signature.
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in config.evaluation.slice_features],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name="AUC",
                        # Thresholds judge the whole eval split; tiny slices (a payment type seen twice)
                        # are reported, not gated on.
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=auc_threshold)
                        ],
                    ),
                    tfma.MetricConfig(class_name="BinaryAccuracy"),
                    tfma.MetricConfig(class_name="Calibration"),
                    tfma.MetricConfig(class_name="MeanLabel"),
                    tfma.MetricConfig(class_name="MeanPrediction"),
                ]
            )
        ],
    )


def _custom_config(config: PipelineConfig) -> dict:
    """What ``run_fn``/``tuner_fn`` read from ``fn_args.custom_config`` (JSON-serialisable, recorded in MLMD)."""
    model = config.to_dict()["model"]
    tuner = config.to_dict()["tuner"]
    return {"hyperparameters": model, "tuner": {"max_trials": tuner["max_trials"], "seed": tuner["seed"]}}


def create_pipeline(config: PipelineConfig) -> tfx_pipeline.Pipeline:
    """Builds the whole TFX pipeline from one config object."""
    example_gen = CsvExampleGen(
        input_base=config.data.root,
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=config.data.train_buckets),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=config.data.eval_buckets),
                ]
            )
        ),
    )
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    # The inferred schema is kept beside the curated one: diffing them shows what the data looks like today.
    inferred_schema = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    curated_schema = ImportSchemaGen(schema_file=config.schema.path)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=curated_schema.outputs["schema"]
    )
    gate = ValidationGate(anomalies=example_validator.outputs["anomalies"], schema=curated_schema.outputs["schema"])
    validated_schema = gate.outputs["validated_schema"]

    transform = Transform(
        examples=example_gen.outputs["examples"], schema=validated_schema, preprocessing_fn=PREPROCESSING_FN
    )
    custom_config = _custom_config(config)

    tuner = None
    if config.tuner.enabled:
        tuner = Tuner(
            tuner_fn=TUNER_FN,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=validated_schema,
            train_args=trainer_pb2.TrainArgs(num_steps=config.tuner.train_steps),
            eval_args=trainer_pb2.EvalArgs(num_steps=config.tuner.eval_steps),
            custom_config=custom_config,
        )

    trainer = Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=validated_schema,
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        train_args=trainer_pb2.TrainArgs(num_steps=config.training.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=config.training.eval_steps),
        custom_config=custom_config,
    )

    baseline_resolver = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=Model),
        model_blessing=Channel(type=ModelBlessing),
    ).with_id("latest_blessed_model_resolver")

    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        schema=validated_schema,
        eval_config=eval_config(config),
    )
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.serving_model_dir)
        ),
    )

    components = [
        example_gen,
        statistics_gen,
        inferred_schema,
        curated_schema,
        example_validator,
        gate,
        transform,
        *([tuner] if tuner else []),
        trainer,
        baseline_resolver,
        evaluator,
        pusher,
    ]
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline.name,
        pipeline_root=config.pipeline.root,
        components=components,
        enable_cache=config.pipeline.enable_cache,
        metadata_connection_config=(
            metadata.sqlite_metadata_connection_config(config.metadata.sqlite_path)
            if config.metadata.sqlite_path
            else None
        ),
        beam_pipeline_args=list(config.beam.args),
    )
