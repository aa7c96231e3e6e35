"""Imports point down only; every edge of the import graph is checked against the rules
that docs/architecture.md states in its `| layer | may import |` table (one source of truth)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _documented_rules() -> dict[str, set[str]]:
    """The `| layer | may import |` table of docs/architecture.md as {layer: allowed layers}."""
    rules: dict[str, set[str]] = {}
    in_table = False
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if cells[:2] == ["layer", "may import"]:
            in_table = True
            continue
        if in_table and line.startswith("|"):
            if set(cells[0]) <= set("-: "):
                continue
            rules[cells[0].rstrip("/")] = {c.strip().strip("`").rstrip("/") for c in cells[1].split(",") if c.strip()}
        elif in_table:
            break
    return rules


ALLOWED = _documented_rules()
LAYERS = set(ALLOWED) | {"tests", "benchmarks"}


def test_architecture_document_states_every_layer():
    assert set(ALLOWED) == {"dl_utils", "model_zoo", "data", "optim", "core", "projects"}, ALLOWED


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
