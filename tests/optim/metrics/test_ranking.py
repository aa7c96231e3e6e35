import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from optim.metrics.ranking import auprc, auroc, precision_recall_curve, roc_curve


def _data(n: int, seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.2
    scores = rng.random(n) + 0.4 * labels
    if ties:
        scores = np.round(scores, 1)
    return scores.astype(np.float32), labels


def test_sklearn_documentation_example():
    scores, labels = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
    # sklearn docs: roc_auc_score -> 0.75, average_precision_score -> 0.8333...
    assert auroc(scores, labels) == pytest.approx(0.75)
    assert auprc(scores, labels) == pytest.approx(0.8333333333)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n", [10, 1000, 200_000])
def test_match_sklearn(n, ties):
    scores, labels = _data(n, seed=n, ties=ties)
    assert auroc(scores, labels) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert auprc(scores, labels) == pytest.approx(skm.average_precision_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_curves_match_sklearn_when_not_subsampled(ties):
    scores, labels = _data(300, seed=3, ties=ties)
    fpr, tpr = roc_curve(scores, labels)
    fpr_ref, tpr_ref, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, fpr_ref)
    np.testing.assert_allclose(tpr, tpr_ref)
    precision, recall = precision_recall_curve(scores, labels)
    precision_ref, recall_ref, _ = skm.precision_recall_curve(labels, scores)
    np.testing.assert_allclose(precision, precision_ref)
    np.testing.assert_allclose(recall, recall_ref)


def test_curves_subsampled():
    scores, labels = _data(50_000, seed=4, ties=False)
    fpr, tpr = roc_curve(scores, labels, max_points=500)
    assert len(fpr) <= 501 and (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    # area of the subsampled curve is close to the exact AUROC
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(scores, labels), abs=1e-3)
    precision, recall = precision_recall_curve(scores, labels, max_points=500)
    assert len(precision) <= 501 and (precision[-1], recall[-1]) == (1.0, 0.0) and recall[0] == 1.0


def test_single_class_gives_nan():
    scores = np.array([0.1, 0.5, 0.9])
    assert np.isnan(auroc(scores, np.zeros(3)))
    assert np.isnan(auroc(scores, np.ones(3)))
    assert np.isnan(auprc(scores, np.zeros(3)))
    assert auprc(scores, np.ones(3)) == 1.0  # sklearn: average_precision_score([1, 1, 1], .) = 1.0
    assert roc_curve(scores, np.zeros(3))[0].size == 0


def test_nan_scores_raise():
    with pytest.raises(ValueError, match="NaN"):
        auroc(np.array([0.1, np.nan]), np.array([0, 1]))


def test_volume_lists_pool_and_torch_inputs():
    scores, labels = _data(1000, seed=5, ties=True)
    vols_s = [torch.from_numpy(scores[:600].reshape(10, 10, 6)), torch.from_numpy(scores[600:].reshape(20, 20, 1))]
    vols_y = [torch.from_numpy(labels[:600].reshape(10, 10, 6)), torch.from_numpy(labels[600:].reshape(20, 20, 1))]
    before = [v.clone() for v in vols_s]
    assert auroc(vols_s, vols_y) == pytest.approx(skm.roc_auc_score(labels, scores))
    assert auprc(vols_s, vols_y) == pytest.approx(skm.average_precision_score(labels, scores))
    assert all(torch.equal(a, b) for a, b in zip(before, vols_s))
