"""Seeding and determinism."""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

DEFAULT_SEED = 42
"""The seed of a config that sets none: training, evaluation and `uad predict` (for a checkpoint that
did not record its evaluator's seed) all fall back to this one value."""


def seed_everything(seed: int, deterministic: bool = True, num_threads: int | None = None) -> None:
    """Seed python, numpy and torch; on CPU this makes a run repeatable for a fixed seed.

    Float sums depend on how many threads split them, so a result is reproducible for a
    given machine and thread count; `num_threads` fixes the count (None: torch's default,
    the number of cores).
    """
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (e.g. seed, data set, volume index); independent of PYTHONHASHSEED."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
