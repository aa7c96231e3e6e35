"""Command-line value types with their ranges, and a parser whose errors are one line.

A value out of range (`--spacing 0`, `--workers -3`, `--threshold nan`) is refused by argparse
before anything runs, as one `error:` line and exit code 2 like every other bad input.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser (and its sub-parsers) whose errors are one `error:` line, exit 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {' '.join(message.split())}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


def _number(kind: type, low: float, what: str, strict: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_float = _number(float, 0.0, "a finite number > 0", strict=True)
non_negative_float = _number(float, 0.0, "a finite number >= 0")
positive_int = _number(int, 1, "an integer >= 1")
non_negative_int = _number(int, 0, "an integer >= 0")
fold_count = _number(int, 2, "an integer >= 2 (k of the k folds)")


def threshold_choice(text: str) -> str:
    """A threshold rule's key (e.g. `fpr_5%`) or a finite number (kept as text: the predictor resolves it)."""
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a fitted rule (e.g. fpr_5%) or a finite number, got {text!r}")
    return text
