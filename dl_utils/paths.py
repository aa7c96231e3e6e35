"""Names from user files that become path components, and paths that must stay inside a folder.

A run, project, task, data set or scan name ends up as a folder or file name; read from a
config, a split CSV or a checkpoint, it must never lead a write outside the folder meant for
it (`../../x`, `/etc/x`). `check_component` refuses such a name where it is read (one line,
before anything is written); `inside` is the last check where a path is joined.

The rule is textual: `..`, separators and absolute paths are refused; symbolic links already
on disk are followed (whoever made the link chose where it points; e.g. a data folder
whose `volumes/` links to a shared store), see data/README.md. A run folder is the exception:
it is written to (`--resume`, `uad describe`, `uad report`) and may come from someone else, so
`check_links_stay_inside` refuses one holding a link that leads outside it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePath

from dl_utils.errors import UserInputError

_SEPARATORS = ("/", "\\")
# Bytes (UTF-8) of a name that becomes a file or folder name. File systems allow 255 per name; the
# framework appends suffixes to a name (`_anomaly_map.nii.gz`, `_reconstruction.nii.gz`, `_roc_pr.json`),
# so a name may use about half of them.
MAX_COMPONENT_BYTES = 128


def component_problem(name: object) -> str | None:
    """None when `name` is one plain file or folder name of at most MAX_COMPONENT_BYTES; else what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        return "is empty"
    if name in (".", ".."):
        return f"is '{name}'"
    if any(sep in name for sep in _SEPARATORS):
        return "holds a path separator"
    if "\x00" in name:
        return "holds a NUL character"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_COMPONENT_BYTES:
        return f"is {size} bytes long (at most {MAX_COMPONENT_BYTES}: file systems allow 255 and suffixes are added)"
    return None


def check_component(name: object, what: str) -> str:
    """`name` unchanged when it is one plain file or folder name; else a one-line UserInputError
    naming `what` (e.g. "split.csv line 3: img_name")."""
    problem = component_problem(name)
    if problem:
        shown = str(name) if len(str(name)) <= 60 else f"{str(name)[:40]}..."
        raise UserInputError(f"{what} '{shown}' {problem}; it becomes a file or folder name, so it must be one plain "
                             "name (no '/', '\\', '..'), which keeps every output inside its folder")
    return str(name)


def inside(folder: str | os.PathLike, *parts: str) -> Path:
    """`folder / parts...`, refused (UserInputError) when the joined path leaves `folder`
    (compared after normalising `..`, without following links)."""
    root = Path(os.path.normpath(folder))
    joined = Path(os.path.normpath(root.joinpath(*parts)))
    if joined != root and root not in joined.parents:
        raise UserInputError(f"'{os.path.join(*parts) if parts else ''}' leads outside {root}; "
                             "a name that becomes a path must stay inside its folder")
    return root.joinpath(*parts)


def flat_name(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """A file path as one plain name: relative to `root` when inside it, parts joined by '__'
    (`brain/x.png` -> `brain__x.png`), so names stay unique and never hold a separator. A name longer
    than MAX_COMPONENT_BYTES keeps its end (the file name) behind a hash of the whole, so it stays unique."""
    pure = PurePath(path)
    if root is not None:
        try:
            pure = pure.relative_to(PurePath(root))
        except ValueError:
            pass
    parts = [p for p in pure.parts if p not in (pure.anchor, ".", "..", "")]
    name = "__".join(parts) or pure.name or "unnamed"
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= MAX_COMPONENT_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    tail = encoded[-(MAX_COMPONENT_BYTES - len(digest) - 2):].decode("utf-8", "ignore")  # a cut character is dropped
    return f"{digest}__{tail}"


def check_links_stay_inside(folder: str | os.PathLike, fix: str) -> None:
    """Refuse (one-line UserInputError) a folder holding a symbolic link whose target lies outside
    it: whatever is written through the link (a resumed run's per_volume.csv, a rewritten
    checkpoint) would land there. Links between its own files are fine; links are not entered."""
    root = Path(folder).resolve()
    for dirpath, dirnames, filenames in os.walk(root):  # followlinks=False: a linked folder is listed, not entered
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            if not path.is_symlink():
                continue
            try:
                target = path.resolve(strict=False)
            except (OSError, RuntimeError):  # a link loop
                target = Path(os.readlink(path))
            if target != root and root not in target.parents:
                raise UserInputError(f"{folder}: {path.relative_to(root)} is a symbolic link to {target}, outside the folder; "
                                     f"writes through it would land there, so {fix}")
