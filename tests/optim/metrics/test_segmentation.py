import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from optim.metrics.segmentation import dice, mean_dice, per_volume_dice, pooled_dice


def test_dice_hand_case():
    pred = np.array([1, 1, 0, 0], dtype=bool)
    target = np.array([1, 0, 1, 0], dtype=bool)
    # hand: |P&G| = 1, |P| = 2, |G| = 2 -> 2 * 1 / 4 = 0.5
    assert dice(pred, target) == pytest.approx(0.5)


def test_dice_matches_sklearn_f1():
    rng = np.random.default_rng(0)
    pred, target = rng.random((2, 8, 8, 3)) < 0.3
    assert dice(pred, target) == pytest.approx(f1_score(target.ravel(), pred.ravel()))


def test_dice_empty_cases():
    empty = np.zeros((3, 3, 2), dtype=bool)
    full = np.ones((3, 3, 2), dtype=bool)
    assert dice(empty, empty) == 1.0  # documented convention
    assert dice(empty, full) == 0.0  # hand: 0 / (0 + 18)
    assert dice(full, empty) == 0.0


def test_pooled_dice_is_dice_of_concatenation():
    rng = np.random.default_rng(1)
    preds = [rng.random((4, 4, 2)) < 0.4 for _ in range(3)]
    targets = [rng.random((4, 4, 2)) < 0.2 for _ in range(3)]
    expected = dice(np.concatenate([p.ravel() for p in preds]), np.concatenate([t.ravel() for t in targets]))
    assert pooled_dice(preds, targets) == pytest.approx(expected)


def test_mean_dice_hand_case():
    preds = [np.array([1, 1, 0, 0]), np.array([0, 0, 0, 0])]
    targets = [np.array([1, 0, 1, 0]), np.array([0, 1, 0, 0])]
    # hand: volume 1 -> 0.5, volume 2 -> 0 / (0 + 1) = 0; mean 0.25
    assert per_volume_dice(preds, targets) == [0.5, 0.0]
    assert mean_dice(preds, targets) == pytest.approx(0.25)
    # pooled hand: |P&G| = 1, |P| = 2, |G| = 3 -> 2 / 5
    assert pooled_dice(preds, targets) == pytest.approx(0.4)
    assert np.isnan(mean_dice([], []))


def test_torch_and_numpy_agree_and_inputs_unchanged():
    rng = np.random.default_rng(2)
    pred, target = rng.random((2, 5, 5, 2)) < 0.5
    pred_t, target_t = torch.from_numpy(pred.copy()), torch.from_numpy(target.copy())
    assert dice(pred_t, target_t) == dice(pred, target)
    assert torch.equal(pred_t, torch.from_numpy(pred)) and torch.equal(target_t, torch.from_numpy(target))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes differ"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))
