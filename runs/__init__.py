"""Reading runs back out of ML Metadata: the one layer that knows how TFX records a run.

Opening the store (read-only), runs and their executions with one vocabulary of states, artifacts, evaluation
results and anomalies; runs recorded in either of TFX's layouts (``contexts``: the local runner's and Airflow's).
The end-of-run summary, the progress display, ``bench/`` and the run explorer read runs through here and nowhere
else. Imports ``pipeline/`` (names, components' result readers) and ML Metadata; never ``runners/``, ``cli/`` or
``ui/``, and never TensorFlow at import time.
"""
