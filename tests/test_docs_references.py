"""Every path, module and file named in README.md, docs/, project READMEs and docstrings exists.

A document that names a file the repository does not have sends its reader on a wrong
guess; this test keeps the prose honest by machine, not by memory.
"""
from __future__ import annotations

import ast
import importlib
import re
import subprocess
from pathlib import Path

import pytest

from core.config.aliases import DOCUMENTED_NAMES
from tests.doc_examples import documents

ROOT = Path(__file__).resolve().parents[1]
TOP_DIRS = ("core", "projects", "model_zoo", "data", "dl_utils", "optim", "weights", "tests", "docs", "benchmarks")
PACKAGES = ("core", "projects", "model_zoo", "data", "dl_utils", "optim", "benchmarks", "tests")
ROOT_FILES = ("README.md", "LICENSE", "setup.sh", "test.sh", "demo.sh", "requirements.txt", "pyproject.toml",
              "ra_environment.yaml")
FILE_SUFFIXES = (".py", ".yaml", ".yml", ".md", ".json", ".pt", ".pkl", ".sh", ".toml", ".csv", ".png", ".txt")
PATH_RE = re.compile(r"(?<![\w./-])((?:" + "|".join(TOP_DIRS) + r")/[\w./-]*[\w/])")
BARE_DOC_RE = re.compile(r"(?<![\w./-])([A-Za-z][\w-]*\.md)(?![\w/])")  # a document cited by its name alone
DOTTED_RE = re.compile(r"`((?:" + "|".join(PACKAGES) + r")(?:\.\w+)+)`")
MODULE_RUN_RE = re.compile(r"python -m ((?:" + "|".join(PACKAGES) + r")(?:\.\w+)*)")
PLACEHOLDER = re.compile(r"[<>*{}]|\.\.\.")


def _documents() -> list[Path]:
    return documents()


def _docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text(), filename=str(path))
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                texts.append(doc)
    return "\n".join(texts)


def _python_files() -> list[Path]:
    files = []
    for top in PACKAGES:
        files += sorted((ROOT / top).rglob("*.py"))
    return files


def _ignored(rel: str) -> bool:
    """Generated outputs (run folders, prepared demo data) are named in docs but not committed."""
    if rel.startswith("runs/"):
        return True
    result = subprocess.run(["git", "check-ignore", "-q", "--no-index", rel], cwd=ROOT, capture_output=True)
    return result.returncode == 0


def _repo_file_names() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return {Path(p).name for p in listed}


def _missing_paths(text: str) -> list[str]:
    missing = []
    for match in PATH_RE.finditer(text):
        rel = match.group(1).rstrip(".")
        family = text[match.end():match.end() + 2].lstrip(".")[:1] in ("{", "*")  # `name.{npz,json}`, `evaluation_*.py`
        if family or PLACEHOLDER.search(rel) or _ignored(rel):
            continue
        if not (ROOT / rel).exists():
            missing.append(rel)
    return missing


BARE_FILE_RE = re.compile(r"(?<![\w./<-])([A-Za-z_][\w-]*\.(?:py|ya?ml|md|json|sh|toml|csv|pt|txt))(?![\w/])")
LAYOUT_DIR_RE = re.compile(r"^(" + "|".join(TOP_DIRS) + r")/\s")  # a layout line: `core/   what it holds`
SUBDIR_RE = re.compile(r"(?<![\w./<-])([a-z][\w]*)/(?![\w<*])")
CODE_SUFFIXES = (".py", ".yaml", ".yml", ".md", ".sh", ".toml")
SNAKE_RE = re.compile(r"(?<![\w./<-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w./<-])")


def _missing_in_plain_blocks(path: Path, names: set[str]) -> list[str]:
    """Untyped ``` blocks (a layout, a picture, sample output) name files bare: each code or document file must
    exist in the repository by that name (a run's outputs, `timing.json`, need not); in a layout line of a top folder (`core/  Main.py, commands/ (cli.py, ...)`, continued by indented
    lines) each file, sub-folder and snake_case module name must exist inside that folder."""
    from tests.doc_examples import fenced_blocks

    missing = []
    for block in fenced_blocks(path):
        if block.lang:
            continue
        top = None
        for line in block.text.splitlines():
            match = LAYOUT_DIR_RE.match(line)
            top = match.group(1) if match else (top if line[:1].isspace() else None)
            files = [m.group(1) for m in BARE_FILE_RE.finditer(line)]
            missing += [f for f in files if f not in names and f.endswith(CODE_SUFFIXES)]  # not outputs (timing.json)
            if top is None:
                continue
            inside = {p.name for p in (ROOT / top).rglob("*")} | {p.stem for p in (ROOT / top).rglob("*.py")}
            for word in files + [m.group(1) for m in SUBDIR_RE.finditer(line)] + \
                    [m.group(1) for m in SNAKE_RE.finditer(line)]:
                if word not in (top, *TOP_DIRS) and word not in inside:
                    missing.append(f"{top}/.../{word}")
    return missing


def _missing_bare_docs(text: str, names: set[str]) -> list[str]:
    return [m.group(1) for m in BARE_DOC_RE.finditer(text) if m.group(1) not in ROOT_FILES and m.group(1) not in names]


def _resolves(dotted: str) -> bool:
    """`core.config.configurator.merge_configs`: the longest importable module, then attributes;
    iml-dl's documented component names (`core.Trainer`) resolve through core.config.aliases."""
    for name, module in DOCUMENTED_NAMES.items():
        if dotted == name or dotted.startswith(name + "."):
            dotted = module + dotted[len(name):]
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _sources() -> list[tuple[str, str]]:
    sources = [(str(p.relative_to(ROOT)), p.read_text()) for p in _documents()]
    sources += [(str(p.relative_to(ROOT)), _docstrings(p)) for p in _python_files()]
    return sources


@pytest.mark.parametrize("name,text", [pytest.param(n, t, id=n) for n, t in _sources()])
def test_named_paths_modules_and_files_exist(name: str, text: str) -> None:
    names = _repo_file_names()
    problems = [f"path {p}" for p in _missing_paths(text)]
    problems += [f"document {f}" for f in _missing_bare_docs(text, names)]
    if name.endswith(".md"):
        problems += [f"file {f}" for f in _missing_in_plain_blocks(ROOT / name, names)]
    dotted = {m.group(1) for m in DOTTED_RE.finditer(text) if not m.group(1).endswith(FILE_SUFFIXES)}
    dotted |= {m.group(1) for m in MODULE_RUN_RE.finditer(text)}
    problems += [f"module/attribute {d}" for d in sorted(dotted) if not _resolves(d)]
    assert not problems, f"{name} names what the repository does not have: " + "; ".join(sorted(set(problems)))


def test_a_layout_block_naming_moved_files_is_caught(tmp_path: Path) -> None:
    """The README's layout once listed Trainer.py and volume_scoring under core after they had moved."""
    doc = tmp_path / "doc.md"
    doc.write_text("```\ncore/   Main.py, Trainer.py, commands/ (cli.py),\n        volume_scoring, nothing_here/\n"
                   "a run writes results.json\n```\n")  # not a layout line: an output need not exist
    assert _missing_in_plain_blocks(doc, _repo_file_names()) == [
        "Trainer.py", "core/.../Trainer.py", "core/.../nothing_here", "core/.../volume_scoring"]
