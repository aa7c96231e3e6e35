"""A disk that fills up or turns read-only mid-run, and two runs at once.

The run stops with one line, the last complete checkpoint stays loadable, and no
partial file is ever left in checkpoints/ (they are staged in the run folder's .partial/).
"""
from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path

import pytest

import core.run.run_folder as run_folder
import dl_utils.checkpoint as checkpoint
from core.Main import main
from dl_utils.checkpoint import load_checkpoint
from tests.core.tiny_project import make_tiny_project
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
    assert err[0].endswith(f"then resume with --resume {_run_dir(tmp_path)} (the last complete checkpoint is intact)"), err
    checkpoints = _run_dir(tmp_path) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best_model.pt", "latest_model.pt"]
    assert load_checkpoint(checkpoints / "latest_model.pt")["epoch"] == 0
    assert load_checkpoint(checkpoints / "best_model.pt")["epoch"] == 0


class _FillingHandle:
    """A file handle on a disk that fills after `room` more bytes: `write` raises ENOSPC, as the OS would."""

    def __init__(self, handle, room: int):
        self._handle, self._room = handle, room

    def write(self, data) -> int:
        self._room -= len(data)
        if self._room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def test_disk_filling_inside_torch_save_is_one_line_and_resumable(tmp_path, capsys, monkeypatch):
    """torch.save wraps the write's ENOSPC in a RuntimeError; the run still ends in the one disk-full line,
    the epoch-0 checkpoints stay loadable, and --resume continues from them once there is room."""
    config = make_training_project(tmp_path, epochs=3)
    original, writes = open, {"n": 0}

    def filling_open(file, mode="r", *args, **kwargs):
        handle = original(file, mode, *args, **kwargs)
        if "w" in mode and Path(file).parent.name == ".partial":  # a checkpoint being staged
            writes["n"] += 1
            if writes["n"] > 2:  # epoch 0 writes best and latest; the third write finds the disk full midway
                return _FillingHandle(handle, room=4096)
        return handle

    monkeypatch.setattr(checkpoint, "open", filling_open, raising=False)
    code = main(["--config_path", str(config), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "the disk is full" in err[0], err
    run_dir = _run_dir(tmp_path)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best_model.pt", "latest_model.pt"]
    assert load_checkpoint(run_dir / "checkpoints" / "latest_model.pt")["epoch"] == 0
    assert not [p for p in (run_dir / ".partial").iterdir()], "a partial file was left behind"
    monkeypatch.setattr(checkpoint, "open", original, raising=False)  # space freed
    assert main(["--config_path", str(config), "--quiet", "--resume", str(run_dir)]) == 0
    assert load_checkpoint(run_dir / "checkpoints" / "latest_model.pt")["epoch"] == 2


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


def _lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_disk_filling_in_a_test_only_evaluation_names_the_file_and_says_run_it_again(tmp_path, capsys, monkeypatch):
    """A scratch file of the evaluation (written in place, whose OSError names no file) is named like an
    atomic write's; a test-only run has no checkpoint to resume: the line says run it again."""
    import core.evaluation.scored_sets as scored_sets

    _fail_after(monkeypatch, scored_sets.np, "savez", 1, OSError(errno.ENOSPC, "No space left on device"))
    assert main(["--config_path", str(make_tiny_project(tmp_path)), "--quiet"]) == 2
    run_dir = _run_dir(tmp_path)
    assert _lines(capsys) == [f"error: {run_dir}/detection/.scratch/healthy/volumes/0000001.npz: cannot write (No space left on "
                              "device); the disk is full; free space, then run the command again (the run folder "
                              f"{run_dir} is incomplete: delete it)"]
    assert not (run_dir / "detection" / ".scratch").exists()


def test_a_full_score_spill_names_its_file(tmp_path):
    from dl_utils.errors import WriteFailed
    from optim.metrics.streaming import ScoreSpill

    spill = ScoreSpill(tmp_path / "spill")
    spill._labels = _FillingHandle(spill._labels, room=0)
    with pytest.raises(WriteFailed, match=r"spill/keys.u8: cannot write \(No space left on device\); the disk is full"):
        spill.add([0.5, 0.25], [1, 0])
    spill.remove()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A tiny training run (1 epoch): a checkpoint recording its grid, for `uad predict`."""
    root = tmp_path_factory.mktemp("trained")
    assert main(["--config_path", str(make_training_project(root, epochs=1)), "--quiet"]) == 0
    return _run_dir(root)


def _predict(trained_run: Path, out: Path) -> list[str]:
    return ["predict", "--model", str(trained_run), "--input", str(trained_run.parents[3] / "data" / "test.csv"),
            "--output", str(out), "--threshold", "0.5", "--device", "cpu", "--no-png"]


def test_predict_on_a_full_disk_stops_at_the_first_file_with_one_line(trained_run, tmp_path, capsys, caplog, monkeypatch):
    """A full disk is no scan's fault: the first failed write stops predict (one line, no row per scan)."""
    import data.nifti_io as nifti_io
    from core.commands.cli import main as uad

    _fail_after(monkeypatch, nifti_io.nib, "save", 0, OSError(errno.ENOSPC, "No space left on device"))
    out = tmp_path / "out"
    assert uad(_predict(trained_run, out)) == 2
    assert _lines(capsys) == [f"error: {out}/t0_anomaly_map.nii.gz: cannot write (No space left on device); the disk is "
                              f"full; free space, then run the command again (the files in {out} are incomplete; "
                              "predictions.csv is written last)"]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # no failed row per scan
    assert list(out.iterdir()) == []


def test_predict_whose_report_cannot_be_written_warns_and_succeeds(trained_run, tmp_path, caplog, monkeypatch):
    """report.html is written last: once the maps and predictions.csv are there, a full disk is a warning
    that names the file and how to rebuild the page, and the command succeeds."""
    import core.run.report as report
    from core.commands.cli import main as uad

    def full(path, text):
        with checkpoint.atomic_path(path):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "atomic_write_text", full)
    out = tmp_path / "out"
    assert uad(_predict(trained_run, out)) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "core.run.report" and r.levelno == logging.WARNING]
    assert warnings == [f"report.html not written: {out}/report.html: cannot write (No space left on device); the disk is full; "
                        f"free space, then rebuild it with `uad report {out}` (every other file of {out} is complete)"]
    assert (out / "predictions.csv").is_file() and not (out / "report.html").exists()
