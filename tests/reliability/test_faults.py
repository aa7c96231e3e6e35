"""A disk that fills up or turns read-only mid-run, and two runs at once.

The run stops with one line, the last complete checkpoint stays loadable, and no
partial file is ever left in checkpoints/ (they are staged in the run folder's .partial/).
"""
from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

import core.run.run_folder as run_folder
import dl_utils.checkpoint as checkpoint
from core.Main import main
from dl_utils.checkpoint import load_checkpoint
from tests.reliability.project import make_training_project


def _fail_after(monkeypatch, target, name: str, calls: int, error: OSError) -> None:
    """Make `target.name` raise `error` from its `calls + 1`-th call on."""
    original = getattr(target, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


def _run_dir(root: Path) -> Path:
    (run_dir,) = list((root / "runs").glob("*/*/*"))
    return run_dir


@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
    (PermissionError(errno.EACCES, "Permission denied"), "the folder is not writable"),
    (OSError(errno.EROFS, "Read-only file system"), "the folder is not writable"),
], ids=["full_disk", "permission_denied", "read_only_fs"])
def test_disk_failure_mid_run_is_one_line_and_keeps_the_last_checkpoint(error, words, tmp_path, capsys, monkeypatch):
    config = make_training_project(tmp_path, epochs=4)
    # epoch 0 writes best_model.pt and latest_model.pt; the disk fails from the third checkpoint write on
    _fail_after(monkeypatch, checkpoint.torch, "save", 2, error)
    code = main(["--config_path", str(config), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    checkpoints = _run_dir(tmp_path) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best_model.pt", "latest_model.pt"]
    assert load_checkpoint(checkpoints / "latest_model.pt")["epoch"] == 0
    assert load_checkpoint(checkpoints / "best_model.pt")["epoch"] == 0


def test_disk_failure_on_log_write_is_one_line(tmp_path, capsys, monkeypatch):
    """A failure outside the atomic writers (metrics.jsonl) still ends in one line."""
    import dl_utils.run_logger as run_logger

    config = make_training_project(tmp_path, epochs=3)
    original = open

    def failing_open(file, mode="r", *args, **kwargs):
        if str(file).endswith("metrics.jsonl") and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return original(file, mode, *args, **kwargs)

    monkeypatch.setattr(run_logger, "open", failing_open, raising=False)
    code = main(["--config_path", str(config), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "No space left on device" in err[0], err


def test_two_runs_at_once_get_separate_folders(tmp_path, monkeypatch):
    """Same config, same second: mkdir either creates the folder or fails, so every run gets its own."""
    parent = tmp_path / "runs" / "misc" / "tiny"
    parent.mkdir(parents=True)
    claimed: list[Path] = []
    barrier = threading.Barrier(8)

    def claim():
        barrier.wait()
        claimed.append(run_folder._claim(parent, "20260101-000000"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(claimed)) == 8 and all(p.is_dir() for p in claimed)


def test_two_runs_in_the_same_second_through_the_cli(tmp_path, capsys, monkeypatch):
    import datetime

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2026, 1, 1, 0, 0, 0)

    monkeypatch.setattr(run_folder._dt, "datetime", Frozen)
    config = make_training_project(tmp_path, epochs=1)
    assert main(["--config_path", str(config), "--quiet"]) == 0
    assert main(["--config_path", str(config), "--quiet"]) == 0
    folders = sorted(p.name for p in (tmp_path / "runs" / "misc" / "tiny").iterdir())
    assert folders == ["20260101-000000", "20260101-000000-2"]
