"""Overlap metrics on binary volumes.

``dice`` matches ``sklearn.metrics.f1_score(target.ravel(), pred.ravel())`` (Dice = F1 on
voxels), except that two empty volumes give 1.0 (perfect agreement on "no lesion"),
where sklearn returns 0.0 with a warning and the originals' formula gives 0/0 = NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from optim.metrics.arrays import check_same_shape, to_numpy


def overlap_counts(pred: Any, target: Any) -> tuple[int, int, int]:
    """Return (|pred AND target|, |pred|, |target|) of two same-shaped binary arrays."""
    p = to_numpy(pred).astype(bool, copy=False)
    g = to_numpy(target).astype(bool, copy=False)
    check_same_shape(p, g, "pred and target")
    return int(np.count_nonzero(p & g)), int(np.count_nonzero(p)), int(np.count_nonzero(g))


def dice_from_counts(intersection: int, pred_sum: int, target_sum: int) -> float:
    """2 |P AND G| / (|P| + |G|); 1.0 when both are empty."""
    denominator = pred_sum + target_sum
    if denominator == 0:
        return 1.0
    return 2.0 * intersection / denominator


def dice(pred: Any, target: Any) -> float:
    """Dice of two binary arrays of any (equal) shape; nonzero counts as True.

    Matches ``sklearn.metrics.f1_score(target.ravel(), pred.ravel())``; empty/empty -> 1.0.
    """
    return dice_from_counts(*overlap_counts(pred, target))


def pooled_dice(preds: Sequence[Any], targets: Sequence[Any]) -> float:
    """Dice of all voxels of all volumes taken together (originals' ``DiceScoreTotal``).

    Equals ``dice(concatenate(preds), concatenate(targets))``; empty/empty -> 1.0.
    """
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets: {len(preds)} vs {len(targets)} volumes")
    totals = np.zeros(3, dtype=np.int64)
    for p, g in zip(preds, targets):
        totals += overlap_counts(p, g)
    return dice_from_counts(*(int(t) for t in totals))


def per_volume_dice(preds: Sequence[Any], targets: Sequence[Any]) -> list[float]:
    """Dice of each volume; a volume with empty prediction and empty target gives 1.0."""
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets: {len(preds)} vs {len(targets)} volumes")
    return [dice(p, g) for p, g in zip(preds, targets)]


def mean_dice(preds: Sequence[Any], targets: Sequence[Any]) -> float:
    """Mean of the per-volume Dice (originals' ``DicePerVolMean``); NaN for no volumes.

    The originals score only volumes with lesions; pass only those to match them, since a
    healthy volume with an empty prediction counts as 1.0 here.
    """
    values = per_volume_dice(preds, targets)
    return float(np.mean(values)) if values else float("nan")
