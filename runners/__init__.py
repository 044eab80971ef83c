"""Where the pipeline runs, each a thin wrapper over TFX's own orchestrators and nothing else.

``local`` (LocalDagRunner, SQLite ML Metadata, in-process Beam), ``kubeflow`` (KubeflowV2DagRunner spec; KFP
submission), ``vertex`` (PipelineJob submission and schedules), ``airflow`` (AirflowDagRunner DAGs for Composer).
A runner takes ``create_pipeline(config)`` as it is: it never adds, removes or rewires nodes, and never branches
the DAG on where it runs. Runners import ``pipeline/``, ``models/`` and ``runs/``; never ``cli/``, ``serving/``
or ``ui/``.
"""
