"""What a command that stopped part-way (a full disk, SIGTERM, Ctrl-C) tells its user to do next.

Only a training run with a saved epoch continues where it stopped (`--resume RUN_FOLDER`); a
test-only evaluation, `uad predict`, `preprocess`, `describe`, `report`, a benchmark or `uad cv` is
run again. The code that knows which says so for the block it runs (`advise`); the exit-code path
(core/commands/exit_codes.py) and the writers (dl_utils/checkpoint.py) read it (`next_step`).
A command that runs others (a benchmark, `uad cv`) advises first and its advice holds over
theirs: resuming one of its runs would not finish it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

RUN_AGAIN = "run the command again"
_RECORDED = "uad_next_step"  # set on an exception that leaves an advised block: the advice where it was raised

_steps: list[Callable[[], str]] = []  # the advice of the blocks running now, outermost first


def next_step(exc: BaseException | None = None) -> str:
    """The advice recorded on `exc` as it left an advised block, else that of the outermost block running now,
    else `RUN_AGAIN` (nothing was written yet, or nothing that a second run does not write anew)."""
    recorded = getattr(exc, _RECORDED, None)
    if isinstance(recorded, str):
        return recorded
    return _steps[0]() if _steps else RUN_AGAIN


@contextlib.contextmanager
def advise(step: Callable[[], str]) -> Iterator[None]:
    """`step()` is the advice while the block runs (unless an outer block advises); an exception leaving the
    block carries it (the block's state, e.g. whether a checkpoint exists, as it was when it failed)."""
    _steps.append(step)
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(Exception):  # an exception object that takes no attribute keeps the default
            setattr(exc, _RECORDED, next_step())
        raise
    finally:
        _steps.pop()


def resume_or_run_again(run_dir: Path, checkpoint: Path) -> Callable[[], str]:
    """A training run's advice: `--resume` once `checkpoint` (what --resume continues from) exists, else run again."""
    def step() -> str:
        if checkpoint.is_file():
            return f"resume with --resume {run_dir} (the last complete checkpoint is intact)"
        return f"{RUN_AGAIN} (no epoch was saved yet: delete {run_dir})"
    return step


def run_again(note: str) -> Callable[[], str]:
    """The advice of a command that is run again; `note` says what it left (e.g. the folder to delete)."""
    return lambda: f"{RUN_AGAIN} ({note})"
