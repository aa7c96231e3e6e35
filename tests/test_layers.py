"""Imports point down only (docs/architecture.md); every edge of the import graph is checked."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "dl_utils": {"dl_utils"},
    "model_zoo": {"model_zoo", "dl_utils"},
    "data": {"data", "dl_utils"},
    "optim": {"optim", "dl_utils"},
    "core": {"core", "data", "optim", "dl_utils"},
    "projects": {"core", "model_zoo", "data", "optim", "dl_utils", "projects"},
}
LAYERS = set(ALLOWED) | {"tests", "benchmarks"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_imports_point_down_only():
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in (ROOT / layer).rglob("*.py"):
            for name in _imports(path):
                top = name.split(".")[0]
                if top not in LAYERS:
                    continue  # stdlib or third-party
                if top not in allowed:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
                if layer == "projects" and top == "projects":
                    own = path.relative_to(ROOT).parts[1]
                    if name.split(".")[1:2] != [own]:
                        bad.append(f"{path.relative_to(ROOT)} imports another project: {name}")
    assert not bad, "\n".join(bad)
