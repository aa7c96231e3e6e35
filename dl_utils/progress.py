"""Progress bars that show on an interactive terminal only (silent in log files and pipes)."""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T] | None = None, desc: str = "", total: int | None = None, unit: str = "it",
             enabled: bool = True) -> tqdm:
    """`tqdm` over `items` (or a manual bar of `total`), disabled unless `enabled` and stderr is a TTY."""
    return tqdm(items, desc=desc, total=total, unit=unit, leave=False, disable=not (enabled and sys.stderr.isatty()))
