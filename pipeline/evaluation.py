"""The Evaluators' TFMA settings: the metrics reported, the plots written, the slices, and the thresholds a model
must pass to be blessed. One function of the config, used by every candidate's Evaluator and by the compiled specs'
runtime parameter ``eval_config``.
"""

from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from models import features
from models.signatures import EXAMPLES_SIGNATURE, TRANSFORM_SIGNATURE
from pipeline.binary_metrics import BinaryClassifierMetrics
from pipeline.config import PipelineConfig

AUC_THRESHOLDS = 1000
# The calibration plot's buckets of predicted probability: the run explorer draws one point per bucket, and with a
# few thousand eval examples finer buckets would show mostly noise.
CALIBRATION_BUCKETS = 20


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
                # The model on serialized examples, as TFMA reads them (models/signatures.py).
                signature_name=EXAMPLES_SIGNATURE,
                # Said outright: otherwise TFMA tries to load every model as Keras first (~0.6 s each) only to
                # fall back to this, since the exported model is a plain tf.Module.
                model_type="tf_generic",
                label_key=features.LABEL,
                # The label is computed by Transform, so TFMA reads it from the model's transform function.
                preprocessing_function_names=[TRANSFORM_SIGNATURE],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in config.evaluation.slice_features],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    # TFMA's ExampleCount, AUC, BinaryAccuracy, Calibration, ConfusionMatrixPlot and
                    # CalibrationPlot, computed from one conversion of each example instead of one per metric
                    # (pipeline/binary_metrics.py: the same values; with pipeline/evaluator_udfs.py's batches
                    # per slice, the Evaluator 7x faster at 150,000 trips).
                    # AUC: 1,000 thresholds instead of TFMA's 10,000: the AUC moves by under 0.001, and the
                    # Evaluator, which computes it for each slice and for the baseline too, runs several seconds
                    # faster. Plots for the run explorer: ROC and precision-recall curves and the confusion matrix at
                    # any threshold come from ConfusionMatrixPlot's matrices (TFMA's 1,000 thresholds, 0.5 among
                    # them), the calibration plot from CalibrationPlot's buckets; both come from the calibration
                    # histogram the AUC is computed from. TFMA 0.47 cannot compute a metric on some slices only, so
                    # they are written for every slice (~85 KB per slice and model).
                    tfma.MetricConfig(
                        class_name=BinaryClassifierMetrics.__name__,
                        module=BinaryClassifierMetrics.__module__,
                        config=json.dumps(
                            {"auc_thresholds": AUC_THRESHOLDS, "calibration_buckets": CALIBRATION_BUCKETS}
                        ),
                        # These thresholds judge the AUC (binary_metrics.NAME), on the whole eval split; tiny
                        # slices (a payment type seen twice) are reported, not gated on.
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=auc_threshold)
                        ],
                    ),
                ]
            )
        ],
    )
