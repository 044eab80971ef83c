"""The pipeline's own TFX components and the readers of what standard components wrote.

``validation_gate`` (stops a run on anomalies), ``model_selection`` (pushes the best blessed candidate),
``curated_schema`` (ImportSchemaGen with a content fingerprint); ``anomalies`` and ``evaluation_results`` read
ExampleValidator's and the Evaluator's outputs in plain words, for the components and for ``runs/`` alike.
Nothing here is wired into a DAG (``pipeline.pipeline`` does that) and nothing imports a runner.
"""
