"""The run explorer (``taxi-pipeline ui``): pages rendered on the server over the ``runs/`` reading layer.

Runs, a run's graph (live while it runs), nodes, artifacts, models, lineage, compare, and a form that starts a
new run with the same ``taxi-pipeline run`` the command line uses. Everything it shows is read through ``runs/``
(never ML Metadata directly); every script, style and font it serves is vendored in ``ui/static/``. Imports
``runs/``, ``pipeline/``, ``models/`` and ``tfx_compat/``; never ``runners/``, ``serving/`` or ``cli/``.
"""
