"""The pipeline image copies every package of ours that a pipeline step can import.

The Dockerfile cannot be built here (no Docker engine); this checks what it copies against the import graph of
the code the steps run (``tests/import_graph.py``: read from the source, every import counted).
"""

from __future__ import annotations

import re

import import_graph

from pipeline.config import PROJECT_DIR

# What the components name by dotted path or executor class: the code a step runs inside the image.
STEP_MODULES = (
    "models.trainer",
    "models.preprocessing",
    "models.model",
    "pipeline.components.validation_gate",
    "pipeline.components.model_selection",
    "pipeline.components.curated_schema",
    "tfx_compat.csv_example_gen",
)


def test_every_package_a_step_imports_is_copied_into_the_image():
    imported = {module.split(".")[0] for module in import_graph.reachable(STEP_MODULES)}
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) ", dockerfile, flags=re.MULTILINE))
    assert {"models", "pipeline", "tfx_compat"} <= imported  # the graph sees the steps' own imports
    assert imported <= copied, f"imported by steps but not copied: {sorted(imported - copied)}"
    assert "COPY schema " in dockerfile and "COPY setup.py " in dockerfile
