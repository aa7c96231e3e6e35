"""The documents and their examples: fenced code blocks found, not listed.

`documents()` is every prose file a reader meets (README.md, docs/*.md, each folder's and
each project's README.md); `examples()` every fenced block of them with its language, and
`commands()` the shell commands of a bash block (continuation lines joined, comments and
blank lines dropped), so a new example is tested the day it is written. `inline_commands()`
is every command quoted inline in the prose (`uad report FOLDER --max-mb N`): placeholders and
`[optional]` parts make those sketches, not commands, so each must be run by a fenced example
of the same program that uses all of its flags (`tests/test_docs_examples.py`).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
INLINE = re.compile(r"`((?:uad|python -m|python core/Main\.py|torchrun|bash) [^`]+)`")  # a command quoted in prose
SHELL = ("bash", "sh", "shell", "console")
YAML = ("yaml", "yml")


def documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    docs += sorted(p for p in ROOT.glob("*/README.md"))
    docs += sorted(p for p in (ROOT / "projects").glob("*/README.md"))
    return [p for p in docs if p.is_file()]


@dataclass(frozen=True)
class Example:
    """One fenced block: where it is (document, first line inside the fence), its language and text."""

    doc: str
    line: int
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def fenced_blocks(path: Path) -> list[Example]:
    """Every ``` block of a markdown file (an unclosed fence runs to the end of the file)."""
    blocks: list[Example] = []
    lang, start, body = None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = FENCE.match(line)
        if lang is None and match:
            lang, start, body = match.group(2).lower(), number + 1, []
        elif lang is not None and match and not match.group(2):
            blocks.append(Example(_name(path), start, lang, "\n".join(body) + "\n"))
            lang = None
        elif lang is not None:
            body.append(line)
    if lang is not None:
        blocks.append(Example(_name(path), start, lang, "\n".join(body) + "\n"))
    return blocks


def examples(langs: tuple[str, ...]) -> list[Example]:
    return [b for doc in documents() for b in fenced_blocks(doc) if b.lang in langs]


def commands(text: str) -> list[list[str]]:
    """The commands of a shell block as argument lists: `\\` continuations joined, `# ...` comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def inline_commands(path: Path) -> list[Example]:
    """Every command quoted inline outside the fenced blocks of a markdown file (lang "inline")."""
    found, inside = [], False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            found.append((number, line))
    text = "\n".join(line for _, line in found)
    starts = [0]
    for _, line in found:
        starts.append(starts[-1] + len(line) + 1)
    out = []
    for match in INLINE.finditer(text):
        index = next(i for i, start in enumerate(starts) if start > match.start()) - 1
        out.append(Example(_name(path), found[index][0], "inline", " ".join(match.group(1).split())))
    return out


def signature(words: list[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    """(program, its flags) of a command: `uad <verb>` (`python -m core.commands.cli` is `uad`), `python -m <module>`,
    `python <script>`, `torchrun`, `bash <script>`; flags are the `--name` words (values and `[ ]` dropped)."""
    words = [w.strip("[]") for w in words]
    if words[:3] == ["python", "-m", "core.commands.cli"]:
        words = ["uad", *words[3:]]
    if words[0] == "uad":
        program: tuple[str, ...] = ("uad", words[1] if len(words) > 1 and not words[1].startswith("-") else "")
    elif words[:2] == ["python", "-m"]:
        program = ("python -m", words[2])
    elif words[0] in ("python", "bash"):
        program = (words[0], words[1] if len(words) > 1 else "")
    else:
        program = (words[0],)
    return program, frozenset(w.split("=")[0] for w in words if w.startswith("--"))
