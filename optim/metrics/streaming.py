"""Exact pooled ranking metrics over more voxels than fit in memory.

A ``ScoreSpill`` appends (score, label) pairs to two files in a scratch folder and keeps a
histogram of the top 16 bits of each float32 score's order key (65,536 buckets, 1 MB).
``summary()`` then visits every distinct score once, in descending order, with its exact
number of positive and negative voxels, and computes AUROC, AUPRC, the exact best-Dice
threshold, a quantile and plotting curves from those counts. The distinct-value sweep
is an on-disk radix partition: one pass scatters the pairs into groups of consecutive
buckets holding at most ``budget`` pairs each; a group is then counted in memory
(``np.unique``), and a single bucket larger than ``budget`` is counted by its low 16 key
bits (``np.bincount``, 65,536 bins), which for float32 is exact. Peak memory is
O(budget + chunk), independent of the number of voxels; the results equal the in-memory
functions of ``optim.metrics.ranking`` / ``thresholds`` (tested against them and sklearn).
Scores are float32 (the maps' dtype); -0.0 counts as +0.0.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dl_utils.checkpoint import writing
from optim.metrics.arrays import check_same_shape, to_numpy

_BUCKETS = 1 << 16
_SIGN = np.uint32(0x80000000)
CHUNK = 1 << 21  # pairs read per step of a pass
BUDGET = 1 << 22  # pairs counted in memory at once (peak ~ 25 bytes each)


def order_keys(scores: np.ndarray) -> np.ndarray:
    """float32 scores -> uint32 keys with the same order (IEEE sign-magnitude flipped)."""
    x = np.ascontiguousarray(scores, dtype=np.float32) + np.float32(0.0)  # -0.0 -> +0.0
    bits = x.view(np.uint32)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN).astype(np.uint32)


def key_values(keys: np.ndarray) -> np.ndarray:
    """Inverse of ``order_keys``: uint32 keys -> float32 scores."""
    keys = np.asarray(keys, dtype=np.uint32)
    bits = np.where(keys & _SIGN, keys & ~_SIGN, ~keys).astype(np.uint32)
    return bits.view(np.float32)


@dataclass
class RankingSummary:
    """What one sweep over a spill yields (pooled over everything added)."""

    n_pos: int
    n_neg: int
    auroc: float
    auprc: float
    best_dice_threshold: float  # exact search, as thresholds.best_dice_threshold_search
    quantiles: dict[float, float]  # q -> numpy.quantile(scores, q, method='higher')
    max_score: float
    roc: tuple[np.ndarray, np.ndarray] = field(repr=False)  # (fpr, tpr) for plotting
    pr: tuple[np.ndarray, np.ndarray] = field(repr=False)  # (precision, recall) for plotting
    histogram: dict[str, np.ndarray] = field(repr=False)  # {"edges", "positives", "negatives"}


def _write(handle: BinaryIO, data: bytes) -> None:
    """Append to a spill file; a full disk names the file (a bare `write` raises an OSError that names none)."""
    with writing(handle.name):
        handle.write(data)


class ScoreSpill:
    """Scores and labels of many volumes, kept on disk in ``folder``; see the module docstring."""

    def __init__(self, folder: Path, budget: int | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.budget = int(BUDGET if budget is None else budget)
        self.hist = np.zeros((2, _BUCKETS), dtype=np.int64)  # [negatives, positives] per bucket
        self._keys = open(self.folder / "keys.u32", "wb")
        self._labels = open(self.folder / "keys.u8", "wb")

    @property
    def n_pos(self) -> int:
        return int(self.hist[1].sum())

    @property
    def n_neg(self) -> int:
        return int(self.hist[0].sum())

    def add(self, scores: Any, labels: Any) -> None:
        """Append scores (any shape, float) with their labels (nonzero = positive)."""
        s = to_numpy(scores).reshape(-1)
        y = to_numpy(labels).reshape(-1).astype(bool, copy=False)
        check_same_shape(s, y, "scores and labels")
        if not np.all(np.isfinite(s)):
            raise ValueError("scores contain NaN or infinite values")
        keys = order_keys(s)
        _write(self._keys, keys.tobytes())
        _write(self._labels, y.astype(np.uint8).tobytes())
        high = keys >> 16
        self.hist[1] += np.bincount(high[y], minlength=_BUCKETS)
        self.hist[0] += np.bincount(high[~y], minlength=_BUCKETS)

    def close(self) -> None:
        for handle in (self._keys, self._labels):
            if not handle.closed:
                with writing(handle.name):  # the buffered tail is written here
                    handle.close()

    def remove(self) -> None:
        """Close and delete the spill's files."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- the sweep ---------------------------------------------------------------------
    def _chunks(self, stem: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with open(f"{stem}.u32", "rb") as fk, open(f"{stem}.u8", "rb") as fl:
            while True:
                keys = np.fromfile(fk, dtype=np.uint32, count=max(CHUNK, 1))
                if keys.size == 0:
                    return
                yield keys, np.fromfile(fl, dtype=np.uint8, count=keys.size).astype(bool)

    def _groups(self) -> list[tuple[int, int]]:
        """Runs of consecutive buckets (high to low) with <= budget pairs, or one bucket."""
        counts = self.hist.sum(0)
        groups: list[tuple[int, int]] = []
        start, low, total = None, 0, 0
        for bucket in np.flatnonzero(counts)[::-1]:
            c = int(counts[bucket])
            if start is not None and total + c > self.budget:
                groups.append((start, low))
                start, total = None, 0
            if start is None:
                start, total = int(bucket), 0
            low, total = int(bucket), total + c
        if start is not None:
            groups.append((start, low))
        return groups

    def distinct_values(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (values float64 descending, positives, negatives int64) chunk by chunk,
        every distinct score exactly once with its exact counts."""
        self.close()
        groups = self._groups()
        if not groups:
            return
        group_of = np.full(_BUCKETS, -1, dtype=np.int64)
        for index, (high, low) in enumerate(groups):
            group_of[low : high + 1] = index
        parts = self.folder / "groups"
        parts.mkdir(exist_ok=True)
        handles = [(open(parts / f"{i}.u32", "wb"), open(parts / f"{i}.u8", "wb")) for i in range(len(groups))]
        try:
            for keys, labels in self._chunks(self.folder / "keys"):
                g = group_of[keys >> 16]
                order = np.argsort(g, kind="stable")
                g, keys, labels = g[order], keys[order], labels[order]
                edges = np.searchsorted(g, np.arange(len(groups) + 1))
                for i in np.unique(g):
                    part = slice(edges[i], edges[i + 1])
                    _write(handles[i][0], keys[part].tobytes())
                    _write(handles[i][1], labels[part].astype(np.uint8).tobytes())
        finally:
            for handle in (h for pair in handles for h in pair):
                with writing(handle.name):
                    handle.close()
        try:
            for index, (high, low) in enumerate(groups):
                yield self._count_group(parts / str(index), high, low)
        finally:
            shutil.rmtree(parts, ignore_errors=True)

    def _count_group(self, stem: Path, high: int, low: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if int(self.hist[:, low : high + 1].sum()) <= self.budget:
            keys = np.fromfile(f"{stem}.u32", dtype=np.uint32)
            labels = np.fromfile(f"{stem}.u8", dtype=np.uint8).astype(bool)
            unique, inverse = np.unique(keys, return_inverse=True)
            pos = np.bincount(inverse[labels], minlength=unique.size)
            neg = np.bincount(inverse[~labels], minlength=unique.size)
        else:  # one bucket, more pairs than the budget: count by the low 16 bits
            pos = np.zeros(_BUCKETS, dtype=np.int64)
            neg = np.zeros(_BUCKETS, dtype=np.int64)
            for keys, labels in self._chunks(stem):
                lowbits = (keys & 0xFFFF).astype(np.int64)
                pos += np.bincount(lowbits[labels], minlength=_BUCKETS)
                neg += np.bincount(lowbits[~labels], minlength=_BUCKETS)
            present = np.flatnonzero(pos + neg)
            unique = (np.uint32(high) << 16) | present.astype(np.uint32)
            pos, neg = pos[present], neg[present]
        values = key_values(unique).astype(np.float64)
        return values[::-1], pos[::-1].astype(np.int64), neg[::-1].astype(np.int64)

    def summary(self, n_target: int | None = None, quantiles: Sequence[float] = (),
                curve_points: int = 2000, histogram_bins: int = 80) -> RankingSummary:
        """One sweep: AUROC / AUPRC (as ``ranking.auroc`` / ``auprc``), the exact best-Dice
        threshold (as ``thresholds.best_dice_threshold_search``; ``n_target`` = lesion
        voxels including those outside the scored region, default n_pos), the quantiles
        ``numpy.quantile(all scores, q, method="higher")`` and subsampled curves."""
        n_pos, n_neg = self.n_pos, self.n_neg
        total = n_pos + n_neg
        n_target = n_pos if n_target is None else int(n_target)
        edges = np.linspace(0.0, max(self._approx_top(0.999), 1e-12), histogram_bins + 1)
        hist_pos = np.zeros(histogram_bins, dtype=np.int64)
        hist_neg = np.zeros(histogram_bins, dtype=np.int64)
        # numpy's 'higher' index ceil((n - 1) q), counted from the top
        ranks = {} if total == 0 else {float(q): total - 1 - int(np.ceil((total - 1) * float(q))) for q in quantiles}
        found: dict[float, float] = {}
        tp = fp = 0
        wins2 = 0  # 2 x (pairs won + half the ties), an exact integer
        ap = 0.0
        best_dice, best_value, threshold, pending = -1.0, None, None, False
        max_score = float("nan")
        step = max(total // max(curve_points, 1), 1)
        curve_fp, curve_tp, last_q = [0], [0], 0
        for values, pos, neg in self.distinct_values():
            if np.isnan(max_score):
                max_score = float(values[0])
            if pending:  # the largest score below the best u is the first value of this chunk
                threshold, pending = float(values[0]), False
            cum_pos = tp + np.cumsum(pos)
            cum_neg = fp + np.cumsum(neg)
            wins2 += int(np.sum(pos * (2 * (n_neg - cum_neg) + neg)))
            has = pos > 0
            ap += float(np.sum(pos[has] * (cum_pos[has] / (cum_pos[has] + cum_neg[has]))))
            if n_target > 0 and has.any():
                dices = np.where(has, 2.0 * cum_pos / (cum_pos + cum_neg + n_target), -1.0)
                i = int(np.argmax(dices))  # first maximum = highest value among ties
                if dices[i] > best_dice:
                    best_dice, best_value = float(dices[i]), float(values[i])
                    if i + 1 < values.size:
                        threshold = float(values[i + 1])
                    else:
                        threshold, pending = None, True
            for q, rank in ranks.items():
                if q not in found and cum_pos[-1] + cum_neg[-1] > rank:
                    found[q] = float(values[int(np.searchsorted(cum_pos + cum_neg, rank, side="right"))])
            bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, histogram_bins - 1)
            keep_hist = values <= edges[-1]
            hist_pos += np.bincount(bins[keep_hist], weights=pos[keep_hist], minlength=histogram_bins).astype(np.int64)
            hist_neg += np.bincount(bins[keep_hist], weights=neg[keep_hist], minlength=histogram_bins).astype(np.int64)
            q = (cum_pos + cum_neg) // step
            take = np.flatnonzero(np.diff(np.concatenate([[last_q], q])) > 0)
            curve_tp += cum_pos[take].tolist()
            curve_fp += cum_neg[take].tolist()
            last_q = int(q[-1])
            tp, fp = int(cum_pos[-1]), int(cum_neg[-1])
        if pending:
            threshold = float(np.nextafter(np.float32(best_value), np.float32(-np.inf)))  # float32: maps compare in float32
        if best_value is None:  # no lesion voxels: an empty prediction
            threshold = max_score if total else 0.0
        if curve_tp[-1] != tp or curve_fp[-1] != fp:
            curve_tp.append(tp)
            curve_fp.append(fp)
        ctp, cfp = np.asarray(curve_tp, dtype=np.float64), np.asarray(curve_fp, dtype=np.float64)
        roc = (cfp / n_neg, ctp / n_pos) if n_pos and n_neg else (np.empty(0), np.empty(0))
        if n_pos:
            with np.errstate(invalid="ignore"):
                precision = np.where(ctp + cfp > 0, ctp / np.maximum(ctp + cfp, 1), 1.0)
            pr = (np.concatenate([precision[1:][::-1], [1.0]]), np.concatenate([(ctp[1:] / n_pos)[::-1], [0.0]]))
        else:
            pr = (np.empty(0), np.empty(0))
        return RankingSummary(
            n_pos=n_pos, n_neg=n_neg,
            auroc=wins2 / (2.0 * n_pos * n_neg) if n_pos and n_neg else float("nan"),
            auprc=ap / n_pos if n_pos else float("nan"),
            best_dice_threshold=float(threshold), quantiles=found, max_score=max_score, roc=roc, pr=pr,
            histogram={"edges": edges, "positives": hist_pos, "negatives": hist_neg},
        )

    def _approx_top(self, share: float) -> float:
        """Upper edge of the bucket holding the ``share`` quantile (for histogram ranges)."""
        counts = self.hist.sum(0)
        total = int(counts.sum())
        if total == 0:
            return 1.0
        bucket = int(np.searchsorted(np.cumsum(counts), share * total))
        top = key_values(np.array([(min(bucket, _BUCKETS - 1) << 16) | 0xFFFF], dtype=np.uint32))[0]
        return float(top) if np.isfinite(top) else float(np.finfo(np.float32).max)
