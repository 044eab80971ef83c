"""Where the pipeline runs: locally (``local``), on Kubeflow/Vertex, or under Airflow; plus the command line."""
