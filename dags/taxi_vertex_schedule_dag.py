"""Runs the compiled taxi pipeline on Vertex AI Pipelines on a schedule: the light Composer option.

The one task submits taxi_pipeline_vertex.json (next to this file; `taxi-pipeline compile --runner vertex
--output <dags folder>/taxi_pipeline_vertex.json`) and waits for the run. Airflow workers need this package and
google-cloud-aiplatform, no TensorFlow. See docs/DEPLOY.md.
"""

import os

from runners.airflow import create_vertex_schedule_dag

dag = create_vertex_schedule_dag(
    spec=os.path.join(os.path.dirname(os.path.abspath(__file__)), "taxi_pipeline_vertex.json"), profile="vertex"
)
