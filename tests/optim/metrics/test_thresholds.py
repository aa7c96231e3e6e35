import numpy as np
import pytest
import torch

from optim.metrics.segmentation import dice
from optim.metrics.thresholds import (
    best_dice_threshold_bisection,
    best_dice_threshold_search,
    fpr_threshold,
    pooled_dice_at_threshold,
)
from optim.postprocessing import RemoveSmallComponents


def reference_bisection(x, y, low, high, steps):
    """Test-tree transcription of the originals' greedy search (find_best_val), recursive."""
    def recurse(low, high, step, best_value, best_point):
        if step == steps:
            return best_point
        if low == high:
            high = 1.0
        q1, q3 = low + (high - low) * 0.25, low + (high - low) * 0.75
        d1, d3 = dice(x > q1, y), dice(x > q3, y)
        if d1 >= d3:
            if d1 >= best_value:
                best_value, best_point = d1, q1
            return recurse(low, low + (high - low) * 0.5, step + 1, best_value, best_point)
        if d3 >= best_value:
            best_value, best_point = d3, q3
        return recurse(low + (high - low) * 0.5, high, step + 1, best_value, best_point)
    return recurse(low, high, 0, 0.0, 0.0)


def _toy(seed: int, separation: float = 0.5, n_vol: int = 3):
    rng = np.random.default_rng(seed)
    segs = [rng.random((8, 8, 4)) < 0.1 for _ in range(n_vol)]
    maps = [(rng.random(s.shape) * 0.5 + separation * s).astype(np.float32) for s in segs]
    return maps, segs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bisection_matches_reference_transcription(seed):
    maps, segs = _toy(seed, separation=0.2)
    x = np.concatenate([m.ravel() for m in maps])
    y = np.concatenate([s.ravel() for s in segs])
    expected = reference_bisection(x, y, 0.0, float(x.max()), 10)
    assert best_dice_threshold_bisection(maps, segs) == pytest.approx(expected)


def test_bisection_hand_trace():
    # lesion scores 1.0, background 0.0 and 0.3; range [0, 1]:
    # step 1: q1 = 0.25 -> 0.3 voxel false positive, Dice 2/3; q3 = 0.75 -> Dice 1 -> keep 0.75, go to [0.5, 1]
    # afterwards every quarter point lies in (0.3, 1) with Dice 1 = best, q1 preferred on ties:
    # step 2 [0.5, 1]: q1 = 0.625 kept (1 >= 1), go to [0.5, 0.75]; the lower end stays 0.5 and
    # the kept point is 0.5 + 0.5 / 2^k / 4 ... after step 10: 0.5 + 0.25 * 0.5 ** 9
    amap = np.array([1.0, 0.0, 0.3, 0.0]).reshape(2, 2, 1)
    seg = np.array([1, 0, 0, 0], dtype=bool).reshape(2, 2, 1)
    assert best_dice_threshold_bisection([amap], [seg]) == pytest.approx(0.5 + 0.25 * 0.5**9)


def test_search_hand_case():
    # lesion scores 0.9, 0.7; background 0.8, 0.2, 0.1 (hand):
    # predict {>= 0.9}: Dice 2*1/(1+2) = 0.667; predict {>= 0.7}: 2*2/(3+2) = 0.8 -> best
    # threshold = largest score below 0.7 = 0.2, so score > 0.2 predicts {0.9, 0.8, 0.7}
    amap = np.array([0.9, 0.7, 0.8, 0.2, 0.1, 0.1], dtype=np.float32).reshape(3, 2, 1)
    seg = np.array([1, 1, 0, 0, 0, 0], dtype=bool).reshape(3, 2, 1)
    t = best_dice_threshold_search([amap], [seg])
    assert t == np.float32(0.2)
    assert pooled_dice_at_threshold([amap], [seg], t) == pytest.approx(0.8)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_search_is_the_brute_force_optimum(seed):
    maps, segs = _toy(seed, separation=0.2)
    maps = [np.round(m, 2) for m in maps]  # ties
    values = np.unique(np.concatenate([m.ravel() for m in maps]))
    candidates = np.concatenate([[values[0] - 1.0], values])
    brute = max(pooled_dice_at_threshold(maps, segs, t) for t in candidates)
    t = best_dice_threshold_search(maps, segs)
    assert pooled_dice_at_threshold(maps, segs, t) == pytest.approx(brute)


def test_bisection_and_search_agree_on_separable_data():
    maps, segs = _toy(4, separation=0.6)  # lesions in [0.6, 1.1), background in [0, 0.5)
    top_background = max(float(m[~s].max()) for m, s in zip(maps, segs))
    low_lesion = min(float(m[s].min()) for m, s in zip(maps, segs))
    t_bis = best_dice_threshold_bisection(maps, segs)
    t_search = best_dice_threshold_search(maps, segs)
    assert top_background <= t_search < low_lesion  # search: the largest score below the lesions
    assert top_background <= t_bis < low_lesion
    assert pooled_dice_at_threshold(maps, segs, t_bis) == 1.0
    assert pooled_dice_at_threshold(maps, segs, t_search) == 1.0


def test_masks_exclude_outside_and_count_missed_lesions():
    amap = np.array([0.9, 0.9, 0.1, 0.9], dtype=np.float32).reshape(2, 2, 1)
    seg = np.array([1, 0, 0, 1], dtype=bool).reshape(2, 2, 1)
    mask = np.array([1, 0, 1, 0], dtype=bool).reshape(2, 2, 1)
    # hand: inside the mask only voxel 0 (lesion, 0.9) and voxel 2 (0.1) remain;
    # prediction {voxel 0}: |P&G| = 1, |P| = 1, |G| = 2 (voxel 3 missed) -> 2/3
    t = best_dice_threshold_search([amap], [seg], [mask])
    assert pooled_dice_at_threshold([amap], [seg], t, [mask]) == pytest.approx(2 / 3)
    assert 0.1 <= t < 0.9


def test_search_without_lesions_predicts_nothing():
    amap = np.array([0.2, 0.5]).reshape(1, 2, 1)
    assert best_dice_threshold_search([amap], [np.zeros((1, 2, 1), bool)]) == 0.5


def test_bisection_with_component_removal():
    # one 8-voxel lesion at 0.9 and an isolated false-positive voxel at 0.95:
    # without removal the best Dice is 2*8/(9+8); with RemoveSmallComponents(min_size=2) it is 1
    amap = np.zeros((6, 6, 6), dtype=np.float32)
    seg = np.zeros((6, 6, 6), dtype=bool)
    amap[:2, :2, :2], seg[:2, :2, :2] = 0.9, True
    amap[5, 5, 5] = 0.95
    step = RemoveSmallComponents(min_size=2)
    t = best_dice_threshold_bisection([amap], [seg], postprocess_binary=step)
    assert pooled_dice_at_threshold([amap], [seg], t, postprocess_binary=step) == 1.0
    assert pooled_dice_at_threshold([amap], [seg], t) == pytest.approx(16 / 17)


def test_torch_inputs_and_unchanged():
    maps, segs = _toy(5)
    maps_t = [torch.from_numpy(m.copy()) for m in maps]
    segs_t = [torch.from_numpy(s.copy()) for s in segs]
    assert best_dice_threshold_search(maps_t, segs_t) == best_dice_threshold_search(maps, segs)
    assert best_dice_threshold_bisection(maps_t, segs_t) == best_dice_threshold_bisection(maps, segs)
    assert all(torch.equal(a, torch.from_numpy(b)) for a, b in zip(maps_t, maps))


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.3])
def test_fpr_threshold_quantile_and_realised_rate(fpr):
    rng = np.random.default_rng(6)
    scores = [rng.random((10, 10, 5)), rng.random((10, 10, 3))]
    flat = np.concatenate([s.ravel() for s in scores])
    t = fpr_threshold(scores, fpr)
    assert t == np.quantile(flat, 1 - fpr, method="higher")
    realised = np.mean(flat > t)
    assert fpr - 1 / flat.size <= realised <= fpr


def test_fpr_threshold_masks_and_bad_rate():
    scores = np.arange(10, dtype=float).reshape(10, 1, 1)
    mask = (np.arange(10) < 5).reshape(10, 1, 1)
    # inside the mask scores 0..4; 1 - 0.2 quantile (method "higher") of 0..4 = 4 -> nothing above
    assert fpr_threshold([scores], 0.2, [mask]) == 4.0
    with pytest.raises(ValueError, match="fpr"):
        fpr_threshold(scores, 1.5)
