"""The taxi TFX pipeline as an Airflow DAG: one task per component, built by TFX's AirflowDagRunner from the same
``create_pipeline(config)`` as every other runner, with the ``composer`` profile.

`taxi-pipeline compile --runner airflow` writes this file (with your profile and overrides) plus the package to
one folder to upload to the Composer dags bucket; see docs/DEPLOY.md. Importing it loads TFX (30-60 s): set
core.dagbag_import_timeout and core.dag_file_processor_timeout above that.
"""

from runners.airflow import create_dag

dag = create_dag(profile="composer")
