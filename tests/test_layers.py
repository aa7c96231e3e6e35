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


def _core_rules() -> dict[str, set[str]]:
    """The `| core package | job | may import |` table of docs/architecture.md."""
    rules: dict[str, set[str]] = {}
    in_table = False
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if cells[:3] == ["core package", "job", "may import"]:
            in_table = True
            continue
        if in_table and line.startswith("|"):
            if set(cells[0]) <= set("-: "):
                continue
            rules[cells[0]] = {c.strip().strip("`") for c in cells[2].split(",") if c.strip()}
        elif in_table:
            break
    return rules


def _core_module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_edges() -> dict[str, set[str]]:
    """{core module: core modules it imports (`from a import b` counts a.b when b is a module)}."""
    modules = {_core_module(p) for p in (ROOT / "core").rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for path in (ROOT / "core").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("core"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
        edges[_core_module(path)] = {t for t in targets if t in modules} - {_core_module(path)}
    return edges


def test_core_packages_import_down_only():
    rules = _core_rules()
    assert set(rules) == {"core.Main", "core.commands", "core.run", "core.evaluation", "core.training", "core.config"}, rules

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    bad = [f"{a} imports {b}" for a, targets in _core_edges().items() for b in targets
           if package(b) != package(a) and package(a) in rules and package(b) not in rules[package(a)]]
    assert not bad, "\n".join(bad)


def test_core_has_no_import_cycle():
    edges = _core_edges()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, "\n".join(cycles)
