"""Names shared by the pipeline and whatever reads its runs back (summary, tests): node ids, and the MLMD
properties the model selector records.

Kept free of TFX imports so the run summary can name things without loading the pipeline. Per-candidate nodes
are ``<Component>_<candidate>``: ids must be unique, and this form is a valid task name on every runner.
"""

from __future__ import annotations

EXAMPLE_GEN = "CsvExampleGen"
VALIDATION_GATE = "ValidationGate"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
MODEL_SELECTOR = "ModelSelector"
PUSHER = "Pusher"

_PER_CANDIDATE = ("Tuner", "Trainer", "Evaluator")

# Custom properties of the selector's ModelBlessing. The first three are the Evaluator's own names, which the
# Pusher and the blessed-model resolvers read; the rest record the decision.
BLESSED = "blessed"
CURRENT_MODEL = "current_model"
CURRENT_MODEL_ID = "current_model_id"
SELECTION_WINNER = "selection_winner"
SELECTION_METRIC = "selection_metric"
SELECTION_REASON = "selection_reason"
SELECTION_SCORES = "selection_scores"


# Custom properties a local run records on its ``pipeline_run`` context, for the run explorer: the resolved
# config (JSON), the pipeline's nodes with their upstream nodes (JSON), the run's log file, and when it ends, its
# state and its row in the runs list (runs/catalog.py).
RUN_CONFIG = "taxi_pipeline_config"
RUN_DAG = "taxi_pipeline_dag"
RUN_LOG = "taxi_pipeline_log"
RUN_STATE = "taxi_pipeline_state"
RUN_ROW = "taxi_pipeline_row"


def tuner(candidate: str) -> str:
    return f"Tuner_{candidate}"


def trainer(candidate: str) -> str:
    return f"Trainer_{candidate}"


def evaluator(candidate: str) -> str:
    return f"Evaluator_{candidate}"


def candidate_of(node_id: str) -> str | None:
    """``Evaluator_dnn`` -> ``dnn``; None for nodes that are not per candidate."""
    component, separator, candidate = node_id.partition("_")
    return candidate if separator and component in _PER_CANDIDATE else None
