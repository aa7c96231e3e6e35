"""Atomic file writing (the one place that does it) and safe checkpoint loading (`weights_only=True`).

Every file this framework writes goes through `atomic_path`: the content is written to a
temporary file in the same file system, flushed to disk, and renamed over the target, so
a reader (or a run killed at any instant) sees the old file or the new one, never half.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from dl_utils import recovery
from dl_utils.errors import UserInputError, WriteFailed

STAGING_PREFIX = ".partial-"


def _default_mode() -> int:
    """0o666 minus the umask: what a plain `open(..., "w")` would give (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", staging_dir: str | Path | None = None) -> Iterator[str]:
    """Yield a temporary path to write; on success it is fsynced and renamed over `path`, on error removed.

    `staging_dir` (same file system) keeps the temporary file out of `path`'s folder, so that
    a folder of checkpoints never holds a partial file, even after kill -9 mid-write.
    `suffix` lets writers that pick the format from the name (nibabel, matplotlib) see it.
    A full or read-only disk raises a one-line UserInputError; the old file stays intact.
    """
    path = Path(path)
    folder = Path(staging_dir) if staging_dir is not None else path.parent
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{STAGING_PREFIX}{path.name}.", suffix=suffix)
        os.close(fd)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise _write_error(path, exc) from exc
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _write_error(path: str | Path, exc: OSError) -> WriteFailed:
    """The one line of a failed write: the file, the reason, the fix and what to do next (a training run
    resumes, any other command is run again: `dl_utils.recovery`); the earlier file, if any, is intact."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "the disk is full; free space"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "the folder is not writable; fix its permissions"
    else:
        fix = "check the disk"
    return WriteFailed(str(path), str(exc.strerror or exc), fix, recovery.next_step())


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """A write outside `atomic_path` (a scratch file written in place): its OSError, which often names no file
    (a full disk inside `write` or `close`), becomes the same one line as an atomic write's, naming `path`."""
    try:
        yield
    except OSError as exc:
        raise _write_error(path, exc) from exc


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename, so readers never see half a file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text variant of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Rows of mappings as a CSV with a header of `columns` (missing values empty), written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def save_checkpoint(state: dict[str, Any], path: str | Path, staging_dir: str | Path | None = None) -> None:
    """Save a checkpoint dict atomically (temporary file + fsync + os.replace).

    A disk that fills inside `torch.save` surfaces as torch's RuntimeError ("unexpected pos",
    "file write failed") around the OSError of the write: that OSError is raised instead, so
    it becomes the one-line "disk is full" error and the previous checkpoint stays the file."""
    with atomic_path(path, staging_dir=staging_dir) as tmp, open(tmp, "wb") as handle:
        try:
            torch.save(state, handle)
        except RuntimeError as exc:
            cause = _os_error_in(exc)
            if cause is None and "PytorchStreamWriter failed writing" in str(exc):
                cause = OSError(errno.EIO, "torch.save could not write the file")
            if cause is None:
                raise
            raise cause from exc


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError an exception was raised from (its cause or context chain), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def read_json_mapping(path: str | Path, fix: str) -> dict[str, Any]:
    """A JSON file holding a mapping (a run folder's results.json, origin.json); a missing, corrupt
    or non-mapping file is a one-line UserInputError naming it and `fix`."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"{path}: not found; {fix}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise UserInputError(f"{path}: not valid JSON{where}; {fix}") from exc
    if not isinstance(value, dict):
        raise UserInputError(f"{path}: expected a JSON mapping, got {type(value).__name__}; {fix}")
    return value


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True` (a pickle's code never runs); problems are one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(
            f"{path}: checkpoint not found; train first (task: train) or set experiment.weights to an existing file"
        )
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt, truncated or hostile files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(
            f"{path}: not a readable weights-only checkpoint ({' '.join(first.split())[:160]}); re-create it with this framework"
        ) from exc
    if not isinstance(state, dict) or "model_weights" not in state:
        raise UserInputError(f"{path}: not a checkpoint of this framework (a dict holding 'model_weights'); "
                             "pass a file written by a training run (checkpoints/best_model.pt)")
    weights = state["model_weights"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in weights.items()):
        raise UserInputError(f"{path}: 'model_weights' is not a mapping of names to tensors; the file is foreign or damaged")
    return state


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (checkpoints and weights are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
