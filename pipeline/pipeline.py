"""``create_pipeline(config)``: the only place the taxi DAG is written.

Runners (``runners/``) pass this pipeline object to an orchestrator; they never add, remove or rewire names.
User code is referenced by dotted path so nothing is packaged or uploaded at run time: the ``models`` package is
installed in the venv locally and in the container image remotely.

    CsvExampleGen -> StatisticsGen -> SchemaGen (inferred, for comparison)
                                   -> ExampleValidator (vs. curated schema from ImportSchemaGen)
                                      -> ValidationGate -> Transform
    for each candidate model in the config:
        Transform -> [Tuner_<name>] -> Trainer_<name>
        Resolver (latest pushed model) + Trainer_<name> -> Evaluator_<name>
    every candidate's model, evaluation and blessing -> ModelSelector -> Pusher
"""

from __future__ import annotations

import json
import os

import tensorflow_model_analysis as tfma
from google.protobuf.message import Message
from ml_metadata.proto import metadata_store_pb2
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
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.data_types import RuntimeParameter
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2
from tfx.types import Channel
from tfx.types.standard_artifacts import Model, ModelBlessing
from tfx.utils import proto_utils

from models import features
from models.candidates import CANDIDATES
from pipeline import names
from pipeline.config import PipelineConfig
from pipeline.curated_schema import CuratedSchemaGen
from pipeline.fingerprints import package_fingerprint
from pipeline.model_selection import CandidateChannels, ModelSelector
from pipeline.validation_gate import ValidationGate

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
TUNER_FN = "models.trainer.tuner_fn"
USER_CODE_PACKAGE = "models"  # the package the dotted paths above live in
CODE_FINGERPRINT_KEY = "code_fingerprint"
AUC_THRESHOLDS = 1000


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
                # Said outright: otherwise TFMA tries to load every model as Keras first (~0.6 s each) only to
                # fall back to this, since the exported model is a plain tf.Module.
                model_type="tf_generic",
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
                        # 1,000 thresholds instead of TFMA's 10,000: the AUC moves by under 0.001, and the
                        # Evaluator, which computes it for each of ~30 slices and for the baseline too, runs
                        # several seconds faster.
                        config=json.dumps({"num_thresholds": AUC_THRESHOLDS}),
                        # Thresholds judge the whole eval split; tiny slices (a payment type seen twice)
                        # are reported, not gated on.
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=auc_threshold)
                        ],
                    ),
                    tfma.MetricConfig(class_name="BinaryAccuracy"),
                    tfma.MetricConfig(class_name="Calibration"),
                ]
            )
        ],
    )


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


def _vertex_training_args(config: PipelineConfig) -> dict:
    """The Vertex AI CustomJob the Trainer/Tuner launch when ``vertex.training`` is on: the pipeline image."""
    machine_spec: dict = {"machine_type": config.vertex.training_machine_type}
    if config.vertex.training_accelerator_type:
        machine_spec["accelerator_type"] = config.vertex.training_accelerator_type
        machine_spec["accelerator_count"] = config.vertex.training_accelerator_count
    return {
        "project": config.vertex.project,
        "job_spec": {
            "worker_pool_specs": [
                {
                    "machine_spec": machine_spec,
                    "replica_count": 1,
                    "container_spec": {"image_uri": config.container.image},
                }
            ],
            **({"service_account": config.vertex.service_account} if config.vertex.service_account else {}),
        },
    }


def metadata_connection(config: PipelineConfig) -> metadata_store_pb2.ConnectionConfig | None:
    """The ML Metadata store of ``[metadata]``: MySQL when ``mysql_host`` is set (Composer), else SQLite (local),
    else None for orchestrators that bring their own (Vertex, Kubeflow).

    The MySQL password is read from the environment variable the config names, so it never sits in a profile.
    """
    if config.metadata.mysql_host:
        return metadata.mysql_metadata_connection_config(
            host=config.metadata.mysql_host,
            port=config.metadata.mysql_port,
            database=config.metadata.mysql_database,
            username=config.metadata.mysql_user,
            password=os.environ.get(config.metadata.mysql_password_env, ""),
        )
    if config.metadata.sqlite_path:
        return metadata.sqlite_metadata_connection_config(config.metadata.sqlite_path)
    return None


def _custom_config(config: PipelineConfig, candidate: str, code_fingerprint: str) -> dict:
    """What ``run_fn``/``tuner_fn`` read from ``fn_args.custom_config`` (JSON-serialisable, recorded in MLMD):
    which candidate to build, and its hyperparameters (its defaults with the config's overrides applied).

    ``code_fingerprint`` is read by nobody: it is there so that an edit of ``models/`` re-runs the step.
    """
    overrides = config.candidates.hyperparameters.get(candidate, {})
    return {
        "candidate": candidate,
        "hyperparameters": CANDIDATES[candidate].defaults.replace(overrides).to_dict(),
        "tuner": {"max_trials": config.tuner.max_trials, "seed": config.tuner.seed},
        CODE_FINGERPRINT_KEY: code_fingerprint,
    }


def create_pipeline(config: PipelineConfig) -> tfx_pipeline.Pipeline:
    """Builds the whole TFX pipeline from one config object."""
    # In the parameters of every step that runs user code, so TFX's cache sees edits (pipeline/fingerprints.py).
    code_fingerprint = package_fingerprint(USER_CODE_PACKAGE)
    example_gen = CsvExampleGen(
        input_base=_runtime(config, "data_root", config.data.root),
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
        custom_config={CODE_FINGERPRINT_KEY: code_fingerprint},
    )
    trainer_class, tuner_class, pusher_class = Trainer, Tuner, Pusher
    cloud_config: dict = {}
    if config.vertex.training:
        # Switch: Trainer and Tuner run their work as Vertex AI Training jobs (TFX's Google Cloud extensions).
        from tfx.extensions.google_cloud_ai_platform import constants as cloud
        from tfx.extensions.google_cloud_ai_platform.trainer import component as vertex_trainer
        from tfx.extensions.google_cloud_ai_platform.trainer.executor import TRAINING_ARGS_KEY
        from tfx.extensions.google_cloud_ai_platform.tuner import component as vertex_tuner
        from tfx.extensions.google_cloud_ai_platform.tuner.executor import (
            REMOTE_TRIALS_WORKING_DIR_KEY,
            TUNING_ARGS_KEY,
        )

        trainer_class, tuner_class = vertex_trainer.Trainer, vertex_tuner.Tuner

        cloud_config = {
            cloud.ENABLE_VERTEX_KEY: True,
            cloud.VERTEX_REGION_KEY: config.vertex.region,
            TRAINING_ARGS_KEY: _vertex_training_args(config),
            TUNING_ARGS_KEY: {"project": config.vertex.project, **_vertex_training_args(config)["job_spec"]},
            # Each candidate's Tuner gets a folder of its own below this one (set in the loop below).
            REMOTE_TRIALS_WORKING_DIR_KEY: f"{config.pipeline.root.rstrip('/')}/tuner_trials",
        }

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
        custom_config = {**_custom_config(config, name, code_fingerprint), **cloud_config}
        if cloud_config:
            custom_config[REMOTE_TRIALS_WORKING_DIR_KEY] = f"{cloud_config[REMOTE_TRIALS_WORKING_DIR_KEY]}/{name}"
        tuner = None
        if config.tuner.enabled:
            tuner = tuner_class(
                tuner_fn=TUNER_FN,
                examples=transform.outputs["transformed_examples"],
                transform_graph=transform.outputs["transform_graph"],
                schema=validated_schema,
                train_args=trainer_pb2.TrainArgs(num_steps=config.tuner.train_steps),
                eval_args=trainer_pb2.EvalArgs(num_steps=config.tuner.eval_steps),
                custom_config=custom_config,
            ).with_id(names.tuner(name))
        trainer = trainer_class(
            run_fn=RUN_FN,
            examples=transform.outputs["transformed_examples"],
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

    push_settings: dict = {
        "push_destination": pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.serving_model_dir)
        )
    }
    if config.vertex.push_to_endpoint:
        # Switch: push to the Vertex AI Model Registry and deploy to an endpoint (TFX's Google Cloud extension).
        from tfx.extensions.google_cloud_ai_platform import constants as cloud
        from tfx.extensions.google_cloud_ai_platform.pusher import component as vertex_pusher

        pusher_class = vertex_pusher.Pusher

        push_settings = {
            "custom_config": {
                cloud.ENABLE_VERTEX_KEY: True,
                cloud.VERTEX_REGION_KEY: config.vertex.region,
                cloud.VERTEX_CONTAINER_IMAGE_URI_KEY: config.vertex.serving_image,
                cloud.SERVING_ARGS_KEY: {
                    "project_id": config.vertex.project,
                    "endpoint_name": config.vertex.endpoint_name,
                    "machine_type": config.vertex.serving_machine_type,
                },
            }
        }
    pusher = pusher_class(
        model=selector.outputs["model"], model_blessing=selector.outputs["blessing"], **push_settings
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
        metadata_connection_config=metadata_connection(config),
        beam_pipeline_args=list(config.beam.args),
    )
