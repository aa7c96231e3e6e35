"""The documents and their examples: fenced code blocks found, not listed.

`documents()` is every prose file a reader meets (README.md, docs/*.md, each folder's and
each project's README.md); `examples()` every fenced block of them with its language, and
`commands()` the shell commands of a bash block (continuation lines joined, comments and
blank lines dropped), so a new example is tested the day it is written.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
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
