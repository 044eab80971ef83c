"""Packaging of the taxi pipeline application.

Dependencies are pinned in requirements.lock (installed with uv by the Makefile); this file declares the packages
and the ``taxi-pipeline`` command. The pipeline container image installs the same way.
"""

from setuptools import find_packages, setup

PACKAGES = ("models", "pipeline", "runners", "runs", "serving", "ui", "cli", "tfx_compat")

setup(
    name="taxi-pipeline",
    version="0.1.0",
    description="The TFX Chicago taxi pipeline: local, Vertex AI / Kubeflow Pipelines and Airflow from one DAG",
    python_requires=">=3.10,<3.12",
    packages=find_packages(
        include=[f"{name}{suffix}" for name in PACKAGES for suffix in ("", ".*")],
    ),
    package_data={
        "pipeline": ["profiles/*.toml"],
        "ui": ["templates/*.html", "static/*.css", "static/*.js", "static/*.svg", "static/vendor/*"],
    },
    entry_points={"console_scripts": ["taxi-pipeline=cli.main:console_main"]},
)
