"""The taxi pipeline: its typed configuration (``config``) and its DAG (``pipeline.create_pipeline``)."""
