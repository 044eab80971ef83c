"""The pipeline image copies every package of ours that a pipeline step imports (the Dockerfile cannot be built
here: no Docker engine; this checks what it copies against what the steps' code really imports)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from pipeline.config import PROJECT_DIR

# What the components name by dotted path or executor class: the code a step runs inside the image.
STEP_MODULES = (
    "models.trainer",
    "models.preprocessing",
    "pipeline.components.validation_gate",
    "pipeline.components.model_selection",
    "pipeline.components.curated_schema",
)
OUR_PACKAGES = ("models", "pipeline", "runners", "runs", "serving", "cli", "tfx_compat")


def test_every_package_a_step_imports_is_copied_into_the_image():
    code = (
        "import importlib, json, sys\n"
        f"for name in {STEP_MODULES!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({OUR_PACKAGES!r}))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    imported = set(json.loads(result.stdout.strip().splitlines()[-1]))
    copied = set(re.findall(r"^COPY (\w+) ", (PROJECT_DIR / "Dockerfile").read_text(), flags=re.MULTILINE))
    assert imported <= copied, f"imported by steps but not copied: {sorted(imported - copied)}"
    assert "schema" in copied and "setup.py" in (PROJECT_DIR / "Dockerfile").read_text()
