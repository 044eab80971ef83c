"""The settings of the session's small real pipeline run (conftest.py): small enough to take half a minute."""

from __future__ import annotations

SLICE_ROWS = 2000
CANDIDATES = ("wide_and_deep", "linear")
SMALL_RUN = [
    "training.train_steps=150",
    "training.eval_steps=5",
    f"candidates.names={','.join(CANDIDATES)}",
    "evaluation.slice_features=trip_start_hour,payment_type",
    "candidates.hyperparameters.wide_and_deep.batch_size=64",
    "candidates.hyperparameters.wide_and_deep.hidden_units=16,8",
    "candidates.hyperparameters.linear.batch_size=64",
    "evaluation.min_auc=0.6",
]

# The nodes of a pipeline with those candidates: what runs before the Evaluators, and the rest.
UPSTREAM_OF_EVALUATORS = [
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "ValidationGate",
    "Transform",
    *(f"Trainer_{name}" for name in CANDIDATES),
]
DOWNSTREAM = [
    "latest_blessed_model_resolver",
    *(f"Evaluator_{name}" for name in CANDIDATES),
    "ModelSelector",
    "Pusher",
]
