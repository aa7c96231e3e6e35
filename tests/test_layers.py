"""Imports point down only; every edge of the import graph is checked against the rules
that docs/architecture.md states in its `| layer | may import |` table (one source of truth)."""
from __future__ import annotations

import ast
import os
import re
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


def _module(path: Path) -> str:
    """The dotted module name of a file under ROOT (`core/run/__init__.py` is `core.run`)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _from_module(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module of a `from ... import` statement: a relative one (`from ..run import x`,
    `from .. import x`) resolved against the importing module's package, as Python resolves it."""
    if node.level == 0:
        return node.module or ""
    package = _module(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]  # a module's package is its parent; a package's is itself
    if node.level - 1 >= len(package):
        raise AssertionError(f"{path.relative_to(ROOT)}:{node.lineno}: relative import beyond the top-level package")
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> list[str]:
    """Every module name an import of `path` may name, absolute: `import a.b` gives a.b,
    `from a import b` gives a and a.b (b may be a module), relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _from_module(path, node)
            names += [module] + [f"{module}.{a.name}" for a in node.names if a.name != "*"]
    return names


def _ignored_folders() -> set[str]:
    """The top-level folders .gitignore names (virtual environment, run outputs): no project code."""
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return {line.strip().strip("/") for line in lines if line.strip().endswith("/") and "/" not in line.strip().strip("/")}


def _python_folders() -> set[str]:
    """Top-level folders holding a `.py` file (symlinks not followed, hidden and ignored folders skipped)."""
    skip = _ignored_folders()
    found = set()
    for folder in sorted(p for p in ROOT.iterdir() if p.is_dir() and not p.is_symlink()):
        if folder.name.startswith(".") or folder.name in skip:
            continue
        for _here, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in skip]
            if any(f.endswith(".py") for f in files):
                found.add(folder.name)
                break
    return found


def test_every_module_belongs_to_a_documented_layer():
    """A module outside the layer table is checked by no rule: a new top-level package is a row first."""
    stray = sorted(_python_folders() - LAYERS) + sorted(p.name for p in ROOT.glob("*.py"))
    assert not stray, f"not in docs/architecture.md's layer table: {stray}"


def test_relative_imports_resolve_like_python():
    """The resolution the checks below rely on, on the audit's cases (a relative import that
    named an upper layer passed unseen when only absolute imports were read)."""
    def names(rel: str, source: str) -> list[str]:
        path = ROOT / rel
        return [_from_module(path, node) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)]

    assert names("core/evaluation/metrics.py", "from ..run import results") == ["core.run"]
    assert names("core/evaluation/metrics.py", "from .. import commands") == ["core"]
    assert names("core/evaluation/metrics.py", "from . import thresholds") == ["core.evaluation"]
    assert names("core/evaluation/__init__.py", "from .metrics import x") == ["core.evaluation.metrics"]
    assert names("core/__init__.py", "from .commands import cli") == ["core.commands"]
    try:
        names("core/stray.py", "from ... import x")
    except AssertionError as error:
        assert "beyond the top-level package" in str(error)
    else:
        raise AssertionError("a relative import beyond the top-level package was accepted")


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


def _core_table() -> dict[str, tuple[str, set[str]]]:
    """The `| core package | job | may import |` table of docs/architecture.md as
    {package: (its job cell as written, the packages it may import)}."""
    table: dict[str, tuple[str, set[str]]] = {}
    in_table = False
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        raw = [c.strip() for c in line.strip().strip("|").split("|")]
        cells = [c.strip("`") for c in raw]
        if cells[:3] == ["core package", "job", "may import"]:
            in_table = True
            continue
        if in_table and line.startswith("|"):
            if set(cells[0]) <= set("-: "):
                continue
            table[cells[0]] = (raw[1], {c.strip().strip("`") for c in cells[2].split(",") if c.strip()})
        elif in_table:
            break
    return table


def _core_rules() -> dict[str, set[str]]:
    """{core package: the core packages it may import}, from docs/architecture.md."""
    return {package: allowed for package, (_, allowed) in _core_table().items()}


def _package(module: str) -> str:
    """The core package a core module belongs to (`core.run.results` -> `core.run`; `core` is its own)."""
    return ".".join(module.split(".")[:2])


def _core_edges() -> dict[str, set[str]]:
    """{core module: core modules it imports (`from a import b` counts a.b when b is a module)}."""
    modules = {_module(p) for p in (ROOT / "core").rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for path in (ROOT / "core").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom):
                module = _from_module(path, node)
                for alias in node.names:
                    full = f"{module}.{alias.name}"
                    targets.add(full if full in modules else module)
        edges[_module(path)] = {t for t in targets if t in modules} - {_module(path)}
    return edges


def test_core_packages_import_down_only():
    rules = _core_rules()
    assert set(rules) == {"core", "core.Main", "core.commands", "core.run", "core.evaluation", "core.training", "core.config"}, rules
    edges = _core_edges()
    stray = sorted(m for m in edges if _package(m) not in rules)
    assert not stray, f"core modules in no package of docs/architecture.md's core table (checked by no rule): {stray}"

    bad = [f"{a} imports {b}" for a, targets in edges.items() for b in targets
           if _package(b) != _package(a) and _package(b) not in rules[_package(a)]]
    assert not bad, "\n".join(bad)


def test_core_table_names_every_module():
    """Each core package's row in docs/architecture.md names every module of the package (`name`),
    so the table is a full map of core."""
    jobs = {package: set(re.findall(r"`([^`]+)`", job)) for package, (job, _) in _core_table().items()}
    missing = [f"{module} (row {_package(module)}: add `{module[len(_package(module)) + 1:]}`)"
               for module in sorted(_core_edges()) if module != _package(module) and _package(module) in jobs
               and module[len(_package(module)) + 1:] not in jobs[_package(module)]]
    assert not missing, "core modules docs/architecture.md does not name:\n" + "\n".join(missing)


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
