"""The names of the exported SavedModel's signatures and functions (models/trainer.py writes them).

One place, read by the trainer that exports them, the Evaluator's settings (pipeline/evaluation.py) and the local
server (serving/formats.py), without importing the trainer's Keras and Transform stack.

- ``serving_default``: one tensor per raw feature in (JSON-friendly: ``{"fare": [12.5], ...}``), ``probabilities``
  out: what TF Serving and Vertex AI endpoints call when a request names no signature;
- ``serving_tf_example``: serialized ``tf.Example`` strings in, ``probabilities`` out (clients that send examples);
- ``transform_features``: serialized examples in, transformed features and label out.

The Evaluator calls the last two (pipeline/evaluation.py).
"""

SERVING_SIGNATURE = "serving_default"
EXAMPLES_SIGNATURE = "serving_tf_example"
TRANSFORM_SIGNATURE = "transform_features"
# Input of the examples signature: a string tensor of serialized tf.Examples.
EXAMPLES_INPUT = "examples"
