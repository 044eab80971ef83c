"""The import graph of our own packages, read from the source with ``ast`` (no module is imported).

Every ``import`` counts, also one inside a function: a lazy import is still a dependency. Used by the layer rules
(``unit/test_layers.py``) and the image check (``unit/test_dockerfile.py``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from pipeline.config import PROJECT_DIR

OUR_FOLDERS = ("tfx_compat", "models", "pipeline", "runs", "runners", "serving", "ui", "cli", "dags")


def modules(folders: Iterable[str] = OUR_FOLDERS) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file below the folders that exist."""
    found = {}
    for folder in folders:
        for path in sorted((PROJECT_DIR / folder).rglob("*.py")):
            parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path) -> set[str]:
    """Every module name this file imports, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (``from pipeline import names`` is an edge to pipeline.names)."""
    ours = modules()
    return {module: {name for name in imports(path) if name in ours} - {module} for module, path in ours.items()}


def reachable(start: Iterable[str]) -> set[str]:
    """The modules of ours that importing ``start`` can import, ``start`` included (packages' ``__init__`` too)."""
    edges = graph()
    seen: set[str] = set()
    todo = list(start)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        todo += [*edges.get(module, ()), *(parent for parent in parents if parent in edges)]
    return seen
