"""The house's import rules, read from the source: which folder may import which, and no import circles.

Every ``import`` counts, also one inside a function (``tests/import_graph.py``). The layers, bottom up:
``tfx_compat`` <- ``models`` <- ``pipeline`` <- ``runs`` <- ``runners`` / ``serving`` / ``ui`` <- ``cli``
(docs/ARCHITECTURE.md says why).
"""

from __future__ import annotations

import ast

import import_graph
import pytest

from pipeline.config import PROJECT_DIR

# Folder -> the folders of ours it may import (besides itself).
ALLOWED = {
    "tfx_compat": set(),
    "models": {"tfx_compat"},
    "pipeline": {"models", "tfx_compat"},
    "runs": {"pipeline", "models", "tfx_compat"},
    "runners": {"runs", "pipeline", "models", "tfx_compat"},
    "serving": {"pipeline", "models", "tfx_compat"},  # models: only the signature names (models/signatures.py)
    "ui": {"runs", "pipeline", "models", "tfx_compat"},
    "cli": {"ui", "runners", "serving", "runs", "pipeline", "models", "tfx_compat"},
    "dags": {"runners"},
}
PACKAGES = [folder for folder in ALLOWED if (PROJECT_DIR / folder).is_dir()]
MODULES = import_graph.modules(PACKAGES)


@pytest.mark.parametrize("folder", PACKAGES)
def test_a_folder_imports_only_the_folders_below_it(folder):
    wrong = []
    for module, path in MODULES.items():
        if module.split(".")[0] != folder:
            continue
        for name in import_graph.imports(path):
            top = name.split(".")[0]
            if top in ALLOWED and top != folder and top not in ALLOWED[folder]:
                wrong.append(f"{path.relative_to(PROJECT_DIR)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_through_others():
    graph = import_graph.graph()
    circles = set()

    def visit(module: str, trail: list[str]) -> None:
        for target in graph[module]:
            if target in trail:
                circle = trail[trail.index(target) :]
                start = circle.index(min(circle))
                circles.add(" -> ".join(circle[start:] + circle[:start] + [min(circle)]))
            elif len(trail) < 12:
                visit(target, [*trail, target])

    for module in graph:
        visit(module, [module])
    assert not circles, "\n".join(sorted(circles))


def test_every_folder_says_what_lives_there():
    """Each package opens with a docstring of its own (its ``__init__.py``), or a README where it is no package."""
    for folder in [*PACKAGES, "pipeline/components"]:
        init = PROJECT_DIR / folder / "__init__.py"
        if init.is_file():
            assert ast.get_docstring(ast.parse(init.read_text())), f"{folder}/__init__.py has no docstring"
    # data/ is the one exception: CsvExampleGen reads every file in it, so it holds the CSV alone (README.md says).
    for folder in ("tests", "bench", "docs", "dags"):
        assert (PROJECT_DIR / folder / "README.md").is_file(), f"{folder}/ has no README.md"
