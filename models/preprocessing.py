"""The Transform step: ``preprocessing_fn`` turns raw taxi features into model inputs.

TensorFlow Transform runs this function twice: once over the whole training split with Beam to compute the
statistics it needs (means, variances, quantile boundaries, vocabularies), and then as a TensorFlow graph that is
attached to the exported model, so serving applies exactly the same preprocessing as training.

Missing values are first-class: every feature may be absent in a row (the curated schema says how often it may),
and each kind of feature maps "missing" to a value of its own instead of silently to zero.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models import features


def _densify(value: tf.Tensor | tf.SparseTensor, default: float | int | str) -> tuple[tf.Tensor, tf.Tensor]:
    """Turns a possibly sparse ``[batch, 1]`` feature into a dense ``[batch]`` tensor and a presence mask.

    Features the schema marks as optional arrive as SparseTensors; required ones as dense ``[batch, 1]`` tensors.
    """
    if isinstance(value, tf.SparseTensor):
        present = tf.sparse.to_dense(
            tf.SparseTensor(value.indices, tf.ones_like(value.values, dtype=tf.bool), [value.dense_shape[0], 1]),
            default_value=False,
        )
        dense = tf.sparse.to_dense(tf.SparseTensor(value.indices, value.values, [value.dense_shape[0], 1]), default)
        return tf.squeeze(dense, axis=1), tf.squeeze(present, axis=1)
    dense = tf.reshape(value, [-1])
    return dense, tf.ones_like(dense, dtype=tf.bool)


def big_tipper_label(tips: tf.Tensor, fare: tf.Tensor) -> tf.Tensor:
    """1 when the tip was more than ``TIP_SHARE_THRESHOLD`` of the fare, else 0 (also when the fare is unknown)."""
    tips = tf.cast(tips, tf.float32)
    fare = tf.cast(fare, tf.float32)
    big = tf.greater(tips, fare * features.TIP_SHARE_THRESHOLD)
    return tf.cast(tf.logical_and(big, tf.math.is_finite(fare)), tf.int64)


def preprocessing_fn(inputs: dict[str, tf.Tensor | tf.SparseTensor]) -> dict[str, tf.Tensor]:
    """Maps raw features (``models.features`` names) to transformed ones (``*_xf``) and the label."""
    outputs: dict[str, tf.Tensor] = {}

    for key in features.DENSE_FLOAT_FEATURES:
        value, present = _densify(inputs[key], 0)
        value = tf.cast(value, tf.float32)
        # z-score over the values present; a missing number becomes 0, the mean, so it carries no signal.
        # One analyzer (``scale_to_z_score``'s mean-and-variance) on the present values only, then scattered
        # back: two separate ``tft.mean``/``tft.var`` analyzers cost Transform ~0.6 s more. Everything stays in
        # one analyzer phase on purpose: an analyzer fed by another's result needs a second phase, which TFT 1.16
        # cannot build on Beam 2.72 (its deep_copy breaks).
        positions = tf.where(present)
        scaled = tft.scale_to_z_score(tf.gather_nd(value, positions))
        outputs[features.transformed_name(key)] = tf.scatter_nd(positions, scaled, tf.shape(value, out_type=tf.int64))

    for key in features.BUCKET_FEATURES:
        value, present = _densify(inputs[key], 0.0)
        buckets = tft.bucketize(tf.cast(value, tf.float32), features.BUCKET_COUNT)
        # Bucket ids are 0..BUCKET_COUNT-1; an unknown coordinate gets the extra id BUCKET_COUNT.
        outputs[features.transformed_name(key)] = tf.where(
            present, buckets, tf.constant(features.BUCKET_COUNT, tf.int64)
        )

    for key, size in features.CATEGORICAL_INT_FEATURES.items():
        value, present = _densify(inputs[key], 0)
        value = tf.clip_by_value(tf.cast(value, tf.int64), 0, size - 1)
        # Ids 0..size-1 are values; id ``size`` means missing.
        outputs[features.transformed_name(key)] = tf.where(present, value, tf.constant(size, tf.int64))

    for key, buckets in features.HASHED_INT_FEATURES.items():
        value, present = _densify(inputs[key], 0)
        hashed = tf.strings.to_hash_bucket_fast(tf.strings.as_string(value), buckets)
        outputs[features.transformed_name(key)] = tf.where(present, hashed, tf.constant(buckets, tf.int64))

    for key in features.VOCAB_FEATURES:
        value, _ = _densify(inputs[key], "")
        outputs[features.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            value, top_k=features.VOCAB_SIZE, num_oov_buckets=features.OOV_BUCKETS, vocab_filename=key
        )

    tips, _ = _densify(inputs[features.LABEL_SOURCE], 0.0)
    fare, fare_present = _densify(inputs[features.FARE], 0.0)
    fare = tf.where(fare_present, tf.cast(fare, tf.float32), tf.constant(float("nan")))
    outputs[features.LABEL] = big_tipper_label(tips, fare)
    return outputs


def categorical_cardinalities() -> dict[str, int]:
    """Number of distinct ids each integer-coded transformed feature can take (missing/OOV ids included).

    The model builder sizes its embeddings and one-hot encodings from this, so it stays in step with
    ``preprocessing_fn`` by construction.
    """
    sizes: dict[str, int] = {}
    for key in features.BUCKET_FEATURES:
        sizes[features.transformed_name(key)] = features.BUCKET_COUNT + 1
    for key, size in features.CATEGORICAL_INT_FEATURES.items():
        sizes[features.transformed_name(key)] = size + 1
    for key, buckets in features.HASHED_INT_FEATURES.items():
        sizes[features.transformed_name(key)] = buckets + 1
    for key in features.VOCAB_FEATURES:
        sizes[features.transformed_name(key)] = features.VOCAB_SIZE + features.OOV_BUCKETS
    return sizes


def dense_feature_names() -> list[str]:
    """Transformed names of the real-valued model inputs."""
    return [features.transformed_name(key) for key in features.DENSE_FLOAT_FEATURES]
