"""Threshold protocols: each ``fit(...) -> float``; predictions are ``score > threshold``.

- ``best_dice_threshold_bisection``: the originals' greedy bisection of [0, max] for the
  best pooled Dice (Zimmerer's search as in Behrendt et al., ``find_best_val``), fitted
  on a labelled validation split.
- ``best_dice_threshold_search``: the exact best pooled Dice over all thresholds.
- ``fpr_threshold``: the threshold leaving a given share of healthy voxels above it
  (needs no labels; the honest protocol).
- Oracle: either Dice protocol applied to the test set itself (an upper bound, not a
  result); there is no separate function.

Pooled Dice = Dice of all voxels of all volumes taken together. ``masks`` (optional,
one per volume) restrict predictions to the brain: pred = (map > t) AND mask, lesion
voxels outside the mask count as missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from optim.metrics.arrays import as_list, check_same_shape, flat_concat, to_numpy
from optim.metrics.segmentation import dice_from_counts

BinaryPostprocess = Callable[[np.ndarray], Any]


def _volumes(maps: Any, segs: Any, masks: Any | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    map_list, seg_list = as_list(maps), as_list(segs)
    mask_list: list[np.ndarray | None] = [None] * len(map_list) if masks is None else as_list(masks)
    if not len(map_list) == len(seg_list) == len(mask_list):
        raise ValueError(
            f"maps, segs, masks: {len(map_list)}, {len(seg_list)}, {len(mask_list)} volumes"
        )
    for m, g, b in zip(map_list, seg_list, mask_list):
        check_same_shape(m, g, "map and seg")
        if b is not None:
            check_same_shape(m, b, "map and mask")
    return [
        (m, g.astype(bool, copy=False), None if b is None else b.astype(bool, copy=False))
        for m, g, b in zip(map_list, seg_list, mask_list)
    ]


def binarize(amap: Any, threshold: float, mask: Any | None = None,
             postprocess_binary: BinaryPostprocess | None = None) -> np.ndarray:
    """(map > threshold) AND mask, then ``postprocess_binary`` (e.g. RemoveSmallComponents)."""
    pred = to_numpy(amap) > threshold
    if mask is not None:
        pred &= to_numpy(mask).astype(bool, copy=False)
    if postprocess_binary is not None:
        pred = to_numpy(postprocess_binary(pred)).astype(bool, copy=False)
    return pred


def pooled_dice_at_threshold(maps: Any, segs: Any, threshold: float, masks: Any | None = None,
                             postprocess_binary: BinaryPostprocess | None = None) -> float:
    """Pooled Dice of ``binarize(map, threshold, mask, postprocess_binary)`` over all volumes."""
    return _pooled_dice(_volumes(maps, segs, masks), threshold, postprocess_binary)


def _pooled_dice(volumes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                 threshold: float, postprocess_binary: BinaryPostprocess | None) -> float:
    totals = np.zeros(3, dtype=np.int64)
    for amap, seg, mask in volumes:
        pred = binarize(amap, threshold, mask, postprocess_binary)
        totals += (np.count_nonzero(pred & seg), np.count_nonzero(pred), np.count_nonzero(seg))
    return dice_from_counts(*(int(t) for t in totals))


def best_dice_threshold_bisection(maps: Any, segs: Any, masks: Any | None = None,
                                  num_steps: int = 10,
                                  postprocess_binary: BinaryPostprocess | None = None) -> float:
    """Greedy bisection of [0, max(maps)] for the best pooled Dice (originals' ``find_best_val``).

    Each step evaluates the quarter points q1 = lo + w/4 and q3 = lo + 3w/4 of [lo, hi];
    the better one (q1 on ties) is kept if it is >= the best so far, and the search goes on
    in the half containing it. Starts from (best 0, threshold 0); a range of zero width
    becomes [lo, 1] as in the originals. 2 * num_steps Dice evaluations; maps are assumed
    non-negative. With ``postprocess_binary`` each evaluation applies it per volume.
    """
    volumes = _volumes(maps, segs, masks)
    high = max(float(np.max(m)) for m, _, _ in volumes)
    return bisection_search(lambda t: _pooled_dice(volumes, t, postprocess_binary), high, num_steps)


def bisection_search(dice_at: Callable[[float], float], high: float, num_steps: int = 10) -> float:
    """The greedy bisection of ``best_dice_threshold_bisection`` on [0, high] for any
    ``dice_at(threshold)`` (e.g. one that reads volumes back from disk)."""
    low = 0.0
    if low == high:
        high = 1.0
    best_value, best_point = 0.0, 0.0
    for _ in range(num_steps):
        width = high - low
        q_low, q_high = low + 0.25 * width, low + 0.75 * width
        d_low = dice_at(q_low)
        d_high = dice_at(q_high)
        if d_low >= d_high:
            if d_low >= best_value:
                best_value, best_point = d_low, q_low
            high = low + 0.5 * width
        else:
            if d_high >= best_value:
                best_value, best_point = d_high, q_high
            low = low + 0.5 * width
    return float(best_point)


def best_dice_threshold_search(maps: Any, segs: Any, masks: Any | None = None) -> float:
    """Exact threshold of the best pooled Dice over all possible thresholds.

    The optimum predicts {score >= u} for some lesion score u (lowering t past a
    non-lesion score only adds false positives), so Dice is evaluated at every distinct
    lesion score u with counts from sorted arrays (``np.sort`` + ``np.searchsorted``); the
    returned t is the largest score below u, so ``score > t`` reproduces the optimum
    exactly, in the scores' own dtype. Ties go to the higher threshold. Without lesion
    voxels, returns max(scores) (empty prediction, Dice 1.0). Component removal is not
    part of this search (use the bisection for that).
    """
    volumes = _volumes(maps, segs, masks)
    scores = flat_concat([m if b is None else m[b] for m, _, b in volumes])
    lesion = flat_concat([g if b is None else g[b] for _, g, b in volumes])
    if not np.all(np.isfinite(scores)):
        raise ValueError("maps contain NaN or infinite values")
    n_target = sum(int(np.count_nonzero(g)) for _, g, _ in volumes)  # includes lesion outside masks
    if scores.size == 0:
        return 0.0
    if n_target == 0 or not lesion.any():
        return float(scores.max())
    positives = np.sort(scores[lesion])
    negatives = np.sort(scores[~lesion])
    values = np.unique(positives)
    tp = positives.size - np.searchsorted(positives, values, side="left")
    fp = negatives.size - np.searchsorted(negatives, values, side="left")
    dices = 2.0 * tp / (tp + fp + n_target)
    best = int(np.flatnonzero(dices == dices.max())[-1])
    return float(_largest_below(values[best], positives, negatives))


def _largest_below(value: np.floating, positives: np.ndarray, negatives: np.ndarray) -> np.floating:
    """Largest element of either sorted array below ``value``, else the next float down."""
    candidates = []
    for arr in (positives, negatives):
        idx = np.searchsorted(arr, value, side="left")
        if idx > 0:
            candidates.append(arr[idx - 1])
    if candidates:
        return max(candidates)
    return np.nextafter(value, -np.inf)


def fpr_threshold(healthy_scores: Any, fpr: float = 0.01, masks: Any | None = None) -> float:
    """Threshold with at most ``fpr`` of the healthy voxels above it.

    ``numpy.quantile(scores, 1 - fpr, method="higher")`` of the pooled healthy scores
    (restricted to ``masks`` if given); the realised share ``mean(scores > t)`` is <= fpr,
    and equals it up to 1 / n without ties.
    """
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    if masks is None:
        scores = flat_concat(healthy_scores)
    else:
        pairs = zip(as_list(healthy_scores), as_list(masks), strict=True)
        scores = flat_concat([s[b.astype(bool, copy=False)] for s, b in pairs])
    if scores.size == 0:
        raise ValueError("fpr_threshold: no healthy scores")
    if not np.all(np.isfinite(scores)):
        raise ValueError("healthy scores contain NaN or infinite values")
    return float(np.quantile(scores, 1.0 - fpr, method="higher"))
