"""Kill a real training process with SIGKILL at random moments, resume it, and count what was lost.

Run as a child, `python -m tests.reliability.kill_resume CHILD <Main.py args>` trains with
checkpoint writes slowed down (written in chunks with pauses), so that a good share of
the kills land in the middle of a write. `kill_and_resume` drives the children and
returns the figures reported in docs/reliability.md.
"""
from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dl_utils.errors import UserInputError

ROOT = Path(__file__).resolve().parents[2]
CHUNKS, PAUSE_S = 8, 0.04  # a checkpoint write takes ~0.3 s in the child


@dataclass
class KillFigures:
    kills: int = 0
    kills_mid_write: int = 0          # a staged (partial) file existed when the process died
    resumes: int = 0
    unreadable_checkpoints: int = 0   # files in checkpoints/ that failed to load after a kill
    checked_files: int = 0
    max_epochs_lost: int = 0          # epochs logged before a kill but not in latest_model.pt after it
    final_exit_code: int | None = None
    final_epochs: int = 0
    logged_epochs: list[int] = field(default_factory=list)  # the epochs of metrics.jsonl's training rows, in order
    same_as_uninterrupted: bool | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _slow_torch_save() -> None:
    """Patch torch.save (as used by dl_utils.checkpoint) to write in chunks with pauses."""
    import torch

    original = torch.save

    def slow_save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        original(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        step = max(1, len(data) // CHUNKS)
        for start in range(0, len(data), step):
            f.write(data[start:start + step])
            f.flush()
            time.sleep(PAUSE_S)

    torch.save = slow_save


def _child(argv: list[str]) -> int:
    _slow_torch_save()
    from core.Main import main

    return main(argv)


def _latest_epoch(run_dir: Path) -> int:
    from dl_utils.checkpoint import load_checkpoint

    path = run_dir / "checkpoints" / "latest_model.pt"
    return int(load_checkpoint(path)["epoch"]) if path.is_file() else -1


def _logged_epoch(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return -1
    epochs = [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip().startswith("{")]
    return max(epochs, default=-1)


def _training_rows(run_dir: Path) -> list[int]:
    """The epoch of every training row of metrics.jsonl, in file order (a resume must not repeat one)."""
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return [int(row["epoch"]) for row in rows if "train_loss" in row]


def _check_all(run_dir: Path, figures: KillFigures) -> None:
    from dl_utils.checkpoint import load_checkpoint

    for path in sorted((run_dir / "checkpoints").iterdir()):
        figures.checked_files += 1
        try:
            load_checkpoint(path)
        except UserInputError as exc:
            figures.unreadable_checkpoints += 1
            figures.notes.append(f"unreadable {path.name}: {exc}")


def _starts(run_dir: Path | None) -> int:
    log = run_dir / "log.txt" if run_dir else None
    return log.read_text().count(" run folder ") if log and log.is_file() else 0


def _wait(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def kill_and_resume(config: Path, output_root: Path, kills: int = 10, seed: int = 0, max_delay_s: float = 1.2,
                    env: dict[str, str] | None = None) -> tuple[KillFigures, Path | None]:
    """Start, SIGKILL at a random moment, check every checkpoint, resume; `kills` times, then run to the end."""
    rng = random.Random(seed)
    figures = KillFigures()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    base = [sys.executable, "-m", "tests.reliability.kill_resume", "CHILD", "--config_path", str(config), "--quiet",
            "--output_root", str(output_root)]
    run_dir: Path | None = None
    for attempt in range(kills + 1):
        resume = run_dir is not None and (run_dir / "checkpoints" / "latest_model.pt").is_file()
        if run_dir is not None and not resume:  # killed before the first checkpoint: start again
            figures.notes.append(f"kill {attempt}: no checkpoint yet, started again")
            run_dir = None
        args = base + (["--resume", str(run_dir)] if resume else [])
        started_before = _starts(run_dir)
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        figures.resumes += int(resume)
        if attempt == kills:  # the last one runs to the end
            out, err = proc.communicate(timeout=600)
            figures.final_exit_code = proc.returncode
            if proc.returncode != 0:
                figures.notes.append("final run failed: " + err.strip()[-500:])
            break
        if run_dir is None:
            folders = lambda: sorted(output_root.glob("*/*/*"))  # noqa: E731
            known = set(folders())
            _wait(lambda: len(set(folders()) - known) > 0 and (sorted(set(folders()) - known)[0] / "log.txt").is_file(), proc)
            new = sorted(set(folders()) - known)
            run_dir = new[0] if new else None
            if run_dir is not None:  # the first kill waits for the first checkpoint, so that there is a run to resume
                _wait(lambda: (run_dir / "checkpoints" / "latest_model.pt").is_file(), proc)
        else:
            _wait(lambda: _starts(run_dir) > started_before, proc)
        time.sleep(rng.uniform(0.0, max_delay_s))
        logged = _logged_epoch(run_dir) if run_dir else -1
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            figures.kills += 1
        proc.communicate()
        if run_dir is None:
            continue
        staged = list((run_dir / ".partial").glob("*")) if (run_dir / ".partial").is_dir() else []
        figures.kills_mid_write += int(bool(staged))
        _check_all(run_dir, figures)
        logged = max(logged, _logged_epoch(run_dir))
        figures.max_epochs_lost = max(figures.max_epochs_lost, logged - _latest_epoch(run_dir))
    if run_dir is not None:
        history = json.loads((run_dir / "results.json").read_text())["training"]["summary"] if (run_dir / "results.json").is_file() else {}
        figures.final_epochs = int(history.get("epochs", 0))
        figures.logged_epochs = _training_rows(run_dir)
        _check_all(run_dir, figures)
    return figures, run_dir


if __name__ == "__main__" and sys.argv[1:2] == ["CHILD"]:
    sys.exit(_child(sys.argv[2:]))
