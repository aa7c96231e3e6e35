"""The on-disk sweep equals the in-memory metrics (and sklearn) exactly, for any budget."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from optim.metrics import ranking, thresholds
from optim.metrics.streaming import ScoreSpill, key_values, order_keys


def _volumes(seed: int, n: int = 5):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        seg = rng.random((9, 8, 4)) < 0.15
        amap = (rng.random((9, 8, 4)) + 0.7 * seg).astype(np.float32)
        amap[rng.random(amap.shape) < 0.4] = 0.0  # heavy ties at zero, as masked maps have
        amap = np.round(amap, 2).astype(np.float32)  # more ties
        out.append((amap, seg))
    return out


def test_order_keys_keep_order_and_invert():
    x = np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-38, 1.0, 2.5, np.finfo(np.float32).max], dtype=np.float32)
    keys = order_keys(x)
    assert np.all(np.diff(keys.astype(np.int64)) >= 0) and keys[3] == keys[4]  # -0.0 is +0.0
    np.testing.assert_array_equal(key_values(keys)[x != 0], x[x != 0])


@pytest.mark.parametrize("budget", [1 << 24, 7, 1])  # one group; many groups; every bucket over budget
def test_sweep_equals_in_memory_metrics(tmp_path, budget):
    vols = _volumes(0)
    spill = ScoreSpill(tmp_path / "s", budget=budget)
    for amap, seg in vols:
        spill.add(amap, seg)
    scores = np.concatenate([a.ravel() for a, _ in vols])
    labels = np.concatenate([s.ravel() for _, s in vols])
    got = spill.summary(quantiles=(0.95,))
    assert got.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert got.auprc == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert got.auroc == pytest.approx(ranking.auroc(scores, labels), abs=1e-14)
    assert got.best_dice_threshold == thresholds.best_dice_threshold_search([a for a, _ in vols], [s for _, s in vols])
    assert got.quantiles[0.95] == float(np.quantile(scores, 0.95, method="higher"))
    assert got.n_pos == labels.sum() and got.max_score == scores.max()
    assert got.histogram["positives"].sum() + got.histogram["negatives"].sum() <= scores.size


def test_quantile_matches_numpy_for_many_sizes(tmp_path):
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 10, 101, 1000):
        s = rng.random(n).astype(np.float32)
        for q in (0.5, 0.95, 0.99, 1 - 0.01, 1 - 0.05):
            spill = ScoreSpill(tmp_path / f"{n}_{q}")
            spill.add(s, np.zeros(n, bool))
            assert spill.summary(quantiles=(q,)).quantiles[q] == float(np.quantile(s, q, method="higher"))


def test_best_dice_threshold_with_lesion_outside_region_and_single_value(tmp_path):
    spill = ScoreSpill(tmp_path / "a")
    spill.add(np.array([0.5, 0.5, 0.2], np.float32), np.array([1, 0, 0], bool))
    # predict {s >= 0.5}: tp 1, fp 1, target 3 -> 0.4; the threshold is the largest score below 0.5
    assert spill.summary(n_target=3).best_dice_threshold == pytest.approx(0.2)
    spill = ScoreSpill(tmp_path / "b")
    spill.add(np.array([0.5], np.float32), np.array([1], bool))
    t = spill.summary().best_dice_threshold
    assert t == float(np.nextafter(np.float32(0.5), np.float32(0))) and np.float32(0.5) > t
