"""Content fingerprints for what TFX's cache cannot see: user code named by dotted path, and the curated schema.

TFX reuses a component's earlier outputs when its inputs and parameters are unchanged. User code referenced as
``models.trainer.run_fn`` enters those parameters as a name only, and ``ImportSchemaGen`` gets the schema file's
path only (TFX hashes file contents for ``module_file`` and nothing else). Without these fingerprints, editing
``models/*.py`` or ``schema/schema.pbtxt`` and re-running would quietly reuse models and validations made with the
old code or schema. The pipeline puts them in the parameters, so an edit re-runs exactly what depends on it.

Not covered: the pipeline's own custom components in ``pipeline/`` (gate, selector). A fingerprint of that
package would change with every edit of the config code and re-run the whole DAG; after changing their logic,
run once with ``--no-cache`` (README).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

# The code a component's dotted path can reach: the user's ``models`` package, and ``tfx_compat``, which the
# Trainer's export goes through.
USER_CODE_PACKAGES = ("models", "tfx_compat")


def code_fingerprint() -> str:
    """The fingerprint of everything in ``USER_CODE_PACKAGES``; what the pipeline puts in custom_config."""
    return package_fingerprint(*USER_CODE_PACKAGES)


def package_fingerprint(*packages: str) -> str:
    """SHA-256 over the names and contents of the packages' ``.py`` files (found without importing them)."""
    digest = hashlib.sha256()
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"{package!r} is not an importable package")
        for root in spec.submodule_search_locations:
            for source in sorted(Path(root).rglob("*.py")):
                digest.update(f"{package}/{source.relative_to(root).as_posix()}".encode() + b"\0")
                digest.update(source.read_bytes() + b"\0")
    return digest.hexdigest()


def file_fingerprint(path: str) -> str:
    """SHA-256 of a local file's contents; empty when the file is not on this machine.

    A remote profile's schema path lies inside the pipeline image (``/pipeline/schema/...``), which is not
    readable where the pipeline is compiled; there a new image tag is what marks a changed schema.
    """
    file = Path(path)
    return hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else ""
