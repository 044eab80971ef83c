"""The taxi TFX pipeline as an Airflow DAG: one task per component, built by TFX's AirflowDagRunner from the same
``create_pipeline(config)`` as every other runner.

`taxi-pipeline compile --runner airflow` copies this file, the package and ``dag_settings.json`` (your profile,
overrides and home) into one folder to upload to the Composer dags bucket; without that file the ``composer``
profile is used as it is. Add overrides on the Airflow machine with the environment variable
TAXI_PIPELINE_OVERRIDES ("a.b=1;c.d=2"). Importing this file loads TFX (30-60 s): set core.dagbag_import_timeout
and core.dag_file_processor_timeout above that (docs/DEPLOY.md).
"""

import os

from runners.airflow import create_dag

dag = create_dag(dag_folder=os.path.dirname(os.path.abspath(__file__)))
