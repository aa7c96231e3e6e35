"""Command-line value types with their ranges, and a parser whose errors are one line.

A value out of range (`--spacing 0`, `--workers -3`, `--threshold nan`) is refused by argparse
before anything runs, as one `error:` line and exit code 2 like every other bad input. Values that
set how much runs or is held have an upper bound too: `--workers` at most twice this machine's CPUs,
`--spacing` 0.25 to 10 mm, `--seed` at most 2**63 - 1 (`dl_utils.param_ranges.MAX_SEED`).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from dl_utils.param_ranges import MAX_SEED


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser (and its sub-parsers) whose errors are one `error:` line, exit 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {' '.join(message.split())}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


def _number(kind: type, low: float, what: str, strict: bool = False, high: float | None = None) -> Callable[[str], float]:
    """A parser of `kind` values >= `low` (> with `strict`) and <= `high` (None: no upper bound)."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if ((isinstance(value, float) and not math.isfinite(value)) or value < low or (strict and value == low)
                or (high is not None and value > high)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a scheduler's allotment; else all of them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity call on this platform
        return max(1, os.cpu_count() or 1)


# Processes of CPU-bound work (`uad preprocess --workers`): more than twice the CPUs only multiplies the memory
# (a full-resolution head and its resampled copies per process) and gains no speed.
WORKERS_PER_CPU = 2
MAX_PROCESS_WORKERS = WORKERS_PER_CPU * usable_cpus()
# `--spacing` in mm: below 0.25 mm a whole head is over 1000**3 voxels (4 GB a copy, before resampling's own);
# above 10 mm a brain is a handful of voxels across, too few to strip, register or crop.
MIN_SPACING_MM, MAX_SPACING_MM = 0.25, 10.0


positive_float = _number(float, 0.0, "a finite number > 0", strict=True)
non_negative_float = _number(float, 0.0, "a finite number >= 0")
positive_int = _number(int, 1, "an integer >= 1")
non_negative_int = _number(int, 0, "an integer >= 0")
fold_count = _number(int, 2, "an integer >= 2 (k of the k folds)")
process_workers = _number(int, 1, f"an integer >= 1 and <= {MAX_PROCESS_WORKERS} ({WORKERS_PER_CPU} per CPU of this machine)",
                          high=MAX_PROCESS_WORKERS)
seed = _number(int, 0, f"an integer >= 0 and <= {MAX_SEED}", high=MAX_SEED)
spacing_mm = _number(float, MIN_SPACING_MM, f"a number of mm >= {MIN_SPACING_MM:g} and <= {MAX_SPACING_MM:g}", high=MAX_SPACING_MM)


def threshold_choice(text: str) -> str:
    """A threshold rule's key (e.g. `fpr_5%`) or a finite number (kept as text: the predictor resolves it)."""
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a fitted rule (e.g. fpr_5%) or a finite number, got {text!r}")
    return text
