"""Which classes read the data and run the training and pushing steps: TFX's standard ones, or their Google Cloud
twins.

The DAG is the same everywhere. Three profile switches swap classes for TFX's Google Cloud extensions, with the
same inputs and outputs: ``data.bigquery_query`` reads the trips from BigQuery (BigQueryExampleGen) instead of
CSV files, ``vertex.training`` runs each Trainer and Tuner as a Vertex AI Training job, and
``vertex.push_to_endpoint`` makes the Pusher upload to the Vertex AI Model Registry and deploy to an endpoint.
The extensions import Google Cloud client libraries (seconds), so they are imported only when switched on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tfx.components import Pusher, Trainer, Tuner
from tfx.proto import pusher_pb2

from pipeline.config import PipelineConfig


@dataclasses.dataclass(frozen=True)
class TrainingClasses:
    """The Trainer and Tuner classes, and the extra ``custom_config`` each candidate's pair needs."""

    trainer: type
    tuner: type
    settings: Callable[[str], dict[str, Any]]  # candidate name -> extra custom_config keys


def training_classes(config: PipelineConfig) -> TrainingClasses:
    """Standard Trainer/Tuner, or with ``vertex.training`` TFX's Vertex AI Training components."""
    if not config.vertex.training:
        return TrainingClasses(Trainer, Tuner, lambda _: {})
    from tfx.extensions.google_cloud_ai_platform import constants as cloud
    from tfx.extensions.google_cloud_ai_platform.trainer import component as vertex_trainer
    from tfx.extensions.google_cloud_ai_platform.trainer.executor import TRAINING_ARGS_KEY
    from tfx.extensions.google_cloud_ai_platform.tuner import component as vertex_tuner
    from tfx.extensions.google_cloud_ai_platform.tuner.executor import REMOTE_TRIALS_WORKING_DIR_KEY, TUNING_ARGS_KEY

    job = _vertex_training_job(config)
    trials = f"{config.pipeline.root.rstrip('/')}/tuner_trials"

    def settings(candidate: str) -> dict[str, Any]:
        return {
            cloud.ENABLE_VERTEX_KEY: True,
            cloud.VERTEX_REGION_KEY: config.vertex.region,
            TRAINING_ARGS_KEY: job,
            TUNING_ARGS_KEY: {"project": config.vertex.project, **job["job_spec"]},
            # Each candidate's Tuner keeps its trials apart: KerasTuner would mix them in a shared folder.
            REMOTE_TRIALS_WORKING_DIR_KEY: f"{trials}/{candidate}",
        }

    return TrainingClasses(vertex_trainer.Trainer, vertex_tuner.Tuner, settings)


def _vertex_training_job(config: PipelineConfig) -> dict[str, Any]:
    """The Vertex AI CustomJob the Trainer/Tuner launch: the pipeline image on the configured machine."""
    machine_spec: dict[str, Any] = {"machine_type": config.vertex.training_machine_type}
    if config.vertex.training_accelerator_type:
        machine_spec["accelerator_type"] = config.vertex.training_accelerator_type
        machine_spec["accelerator_count"] = config.vertex.training_accelerator_count
    job_spec: dict[str, Any] = {
        "worker_pool_specs": [
            {"machine_spec": machine_spec, "replica_count": 1, "container_spec": {"image_uri": config.container.image}}
        ]
    }
    if config.vertex.service_account:
        job_spec["service_account"] = config.vertex.service_account
    return {"project": config.vertex.project, "job_spec": job_spec}


BIGQUERY_EXAMPLE_GEN = "BigQueryExampleGen"


def bigquery_example_gen(query: str, splits: Any) -> Any:
    """TFX's BigQueryExampleGen on ``query``, split as the CSV ExampleGen splits (``splits``, an Output proto).

    Its Beam job reads through BigQuery's export to Cloud Storage: the Beam args need ``--project`` and
    ``--temp_location`` (docs/DEPLOY.md).
    """
    from tfx.extensions.google_cloud_big_query.example_gen.component import BigQueryExampleGen

    return BigQueryExampleGen(query=query, output_config=splits).with_id(BIGQUERY_EXAMPLE_GEN)


def pusher(config: PipelineConfig, **channels: Any) -> Any:
    """The Pusher of ``channels`` (model, model_blessing): to the serving directory, or with
    ``vertex.push_to_endpoint`` to the Vertex AI Model Registry and an endpoint."""
    if not config.vertex.push_to_endpoint:
        destination = pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.serving_model_dir)
        )
        return Pusher(push_destination=destination, **channels)
    from tfx.extensions.google_cloud_ai_platform import constants as cloud
    from tfx.extensions.google_cloud_ai_platform.pusher import component as vertex_pusher

    return vertex_pusher.Pusher(
        custom_config={
            cloud.ENABLE_VERTEX_KEY: True,
            cloud.VERTEX_REGION_KEY: config.vertex.region,
            cloud.VERTEX_CONTAINER_IMAGE_URI_KEY: config.vertex.serving_image,
            cloud.SERVING_ARGS_KEY: {
                "project_id": config.vertex.project,
                "endpoint_name": config.vertex.endpoint_name,
                "machine_type": config.vertex.serving_machine_type,
            },
        },
        **channels,
    )
